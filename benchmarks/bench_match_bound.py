"""Matching cost per event is bounded: a hostile event against many non-indexed filters, with and without the bound.

1,000 targets each filter one field ``tags`` with a regex, a contains or a wildcard (none can be hashed, so
each examines every value). Events with N values at ``tags`` are matched with the default bound
(``matching.index.MAX_MATCH_WORK``) and, with ``--unbounded``, as before the bound (the 25,000-value event
then takes about a minute here). Prints the outcome and the time per event. ``--json`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time

from cxone_eventbridge.matching import InvalidEventError, RoutingTable
from cxone_eventbridge.matching.index import MAX_MATCH_WORK
from cxone_eventbridge.models import IntegrationTarget

SIZES = (10, 45, 100, 2_000, 25_000)


def scanning_targets(count: int) -> list[IntegrationTarget]:
    """Targets whose only clause on ``tags`` is a regex, a contains or a wildcard."""
    made = []
    for n in range(count):
        endpoint = f"https://hooks.example.com/{n}"
        if n % 3 == 0:
            filters = [{"field": "tags", "operator": "regex", "value": f"^zz{n}[a-z]+x$"}]
            made.append(IntegrationTarget(name=f"t{n}", endpoint=endpoint, event_filters=filters))
        elif n % 3 == 1:
            filters = [{"field": "tags", "operator": "contains", "value": f"zz{n}q"}]
            made.append(IntegrationTarget(name=f"t{n}", endpoint=endpoint, event_filters=filters))
        else:
            pattern = {"tags": [{"wildcard": f"zz{n}*q*x"}]}
            made.append(IntegrationTarget(name=f"t{n}", endpoint=endpoint, event_pattern=pattern))
    return made


def measure(table: RoutingTable, values: int) -> dict[str, object]:
    """Match one event with ``values`` tags; the outcome and how long it took."""
    event = {"tags": [f"value-{n:06d}" for n in range(values)]}
    started = time.perf_counter()
    try:
        outcome = f"matched {len(table.match(event))}"
    except InvalidEventError:
        outcome = "refused"
    return {"values": values, "outcome": outcome, "ms": round((time.perf_counter() - started) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unbounded", action="store_true", help="also match without the bound (slow)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    options = parser.parse_args()
    targets = scanning_targets(1_000)
    tables = {f"bound {MAX_MATCH_WORK:,}": RoutingTable(targets)}
    if options.unbounded:
        tables["unbounded"] = RoutingTable(targets, max_match_work=10**15)
    results = {name: [measure(table, values) for values in SIZES] for name, table in tables.items()}
    if options.json:
        print(json.dumps(results))
        return
    print(f"{'table':<16} {'values':>7} {'outcome':>12} {'ms':>10}")
    for name, rows in results.items():
        for row in rows:
            print(f"{name:<16} {row['values']:>7} {row['outcome']!s:>12} {row['ms']:>10}")


if __name__ == "__main__":
    main()
