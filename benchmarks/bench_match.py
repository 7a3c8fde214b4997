"""Events per second when routing contact-center events to 10 ... 10,000 targets.

Engines compared on the same event stream:

- ``engine``: cxone_eventbridge.matching.RoutingTable over the targets' EventBridge patterns.
- ``linear_scan``: the tutorial's ``match_event`` loop, re-implemented here as written (every target,
  every filter, ``event.get(field)``, ``contains`` and ``re.search``). The tutorial's filters reach only
  top-level fields, so each target's filters are the top-level part of its subscription (tenant scoping
  with ``contains``, the event type with ``regex``): the baseline does less work per target than the engine.
- ``moto``: moto's ``EventPattern.matches_event`` per target over the same patterns (when moto is installed).

Rates are events per CPU second of this process (one core), the median of several runs; slow baselines
are time-boxed. Run:

    .venv/bin/python benchmarks/bench_match.py            # a table
    .venv/bin/python benchmarks/bench_match.py --json     # one JSON object per row
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cxone_eventbridge.matching import RoutingTable, compile_target_rule
from cxone_eventbridge.models import EventFilter, IntegrationTarget

SIZES = (10, 100, 1_000, 10_000)
TENANTS = 2_000
EVENT_COUNT = 20_000
ENGINE_RUNS = 5
BASELINE_RUNS = 3
BASELINE_SECONDS = 1.0  # per run: enough events for a stable rate, bounded for 10,000 targets

EVENT_TYPES = (
    "call.answered",
    "call.abandoned",
    "call.ended",
    "chat.message.received",
    "chat.ended",
    "email.received",
    "agent.state.changed",
    "sentiment.scored",
    "contact.queued",
    "contact.transferred",
)
SKILLS = (("1001", "Billing"), ("1002", "Support"), ("1003", "Sales"), ("1004", "Retention"), ("1013", "VIP"))


def tenant(number: int) -> str:
    return f"tenant-{number:04d}"


def make_event(rng: random.Random, number: int, tenants: int = TENANTS) -> dict[str, Any]:
    """A nested contact-center event with 18 leaf fields, like examples/events.jsonl."""
    skill_id, skill_name = rng.choice(SKILLS)
    return {
        "id": f"evt-{number:07d}",
        "eventType": rng.choice(EVENT_TYPES),
        "timestamp": f"2026-11-29T09:{number % 60:02d}:{rng.randrange(60):02d}Z",
        "tenantId": tenant(rng.randrange(tenants)),
        "priority": rng.randrange(1, 10),
        "contact": {
            "id": f"c-{rng.randrange(10**9):09d}",
            "channel": rng.choice(("voice", "chat", "email")),
            "direction": rng.choice(("inbound", "outbound")),
            "ani": f"+1555{rng.randrange(10**7):07d}",
            "skill": {"id": skill_id, "name": skill_name},
            "queue": {"name": f"{skill_name} Queue", "depth": rng.randrange(40)},
        },
        "agent": {"id": f"agent-{rng.randrange(300):03d}", "team": rng.choice(("North", "South", "Overflow"))},
        "metrics": {
            "waitSeconds": round(rng.uniform(0, 300), 1),
            "handleSeconds": round(rng.uniform(0, 900), 1),
            "sentimentScore": round(rng.uniform(-1, 1), 2),
        },
        "source": {"ip": f"203.0.113.{rng.randrange(256)}", "region": rng.choice(("na1", "eu1", "au1"))},
        "tags": rng.sample(("vip", "escalated", "callback", "survey"), rng.randrange(3)),
    }


@dataclass(frozen=True)
class Subscription:
    """One target's interest: an EventBridge pattern, and the tutorial filters for its top-level part."""

    pattern: dict[str, Any]
    filters: list[dict[str, Any]]


def make_subscription(rng: random.Random, tenants: int = TENANTS) -> Subscription:
    """A realistic mixed pattern scoped to one tenant (exact, prefix, suffix, anything-but, numeric, ...)."""
    t = tenant(rng.randrange(tenants))
    scope = {"field": "tenantId", "operator": "contains", "value": t}
    kind = rng.randrange(8)
    if kind == 0:
        pattern: dict[str, Any] = {
            "eventType": ["call.answered", "call.abandoned"],
            "contact": {"channel": ["voice"]},
            "metrics": {"waitSeconds": [{"numeric": [">", 60]}]},
        }
        regex = r"^call\.(answered|abandoned)$"
    elif kind == 1:
        pattern = {
            "$or": [{"eventType": [{"prefix": "chat."}]}, {"eventType": [{"prefix": "email."}]}],
            "contact": {"skill": {"name": [{"anything-but": "Retention"}]}},
        }
        regex = r"^(chat|email)\."
    elif kind == 2:
        pattern = {"eventType": ["agent.state.changed"], "agent": {"team": ["North", "South"]}}
        regex = r"^agent\.state\.changed$"
    elif kind == 3:
        pattern = {"eventType": ["sentiment.scored"], "metrics": {"sentimentScore": [{"numeric": ["<", -0.5]}]}}
        regex = r"^sentiment\.scored$"
    elif kind == 4:
        pattern = {"source": {"ip": [{"cidr": "203.0.113.0/25"}]}, "tags": ["vip", "escalated"]}
        regex = ""
    elif kind == 5:
        pattern = {
            "contact": {"skill": {"id": [{"wildcard": "10*3"}]}, "direction": [{"equals-ignore-case": "INBOUND"}]}
        }
        regex = ""
    elif kind == 6:
        pattern = {"priority": [{"numeric": [">=", 7]}], "contact": {"queue": {"name": [{"suffix": " Queue"}]}}}
        regex = ""
    else:
        pattern = {"eventType": [{"prefix": "contact."}], "agent": {"id": [{"exists": True}]}}
        regex = r"^contact\."
    pattern = {"tenantId": [t], **pattern}
    filters = [scope] + ([{"field": "eventType", "operator": "regex", "value": regex}] if regex else [])
    return Subscription(pattern, filters)


class TutorialTarget:
    """What the tutorial's router holds per target: a name and its filters."""

    def __init__(self, name: str, filters: list[EventFilter]) -> None:
        self.name = name
        self.event_filters = filters


class TutorialRouter:
    """The tutorial's ``match_event`` loop, as written (only the matching part of its EventRouter)."""

    def __init__(self, targets: Sequence[TutorialTarget]) -> None:
        self.targets = {target.name: target for target in targets}

    def match_event(self, event: dict[str, Any]) -> list[str]:
        matched = []
        for name, target in self.targets.items():
            if not target.event_filters:
                matched.append(name)
                continue
            all_match = True
            for f in target.event_filters:
                field_value = event.get(f.field)
                if field_value is None:
                    all_match = False
                    break
                if f.operator == "contains" and f.value not in str(field_value):  # noqa: SIM114 - as written
                    all_match = False
                    break
                elif f.operator == "regex" and not re.search(f.value, str(field_value)):  # noqa: RET508 - as written
                    all_match = False
                    break
            if all_match:
                matched.append(name)
        return matched


def rate(match: Callable[[dict[str, Any]], object], events: Sequence[dict[str, Any]], budget: float | None) -> float:
    """Events per CPU second over ``events``, stopping after ``budget`` wall seconds when one is given.

    CPU time of this process, not wall time, so that other work on the machine does not count against
    a single core's throughput; the time box is in wall seconds, so that the run stays bounded.
    """
    done = 0
    deadline = time.perf_counter() + budget if budget is not None else None
    start = time.process_time()
    for event in events:
        match(event)
        done += 1
        if deadline is not None and done % 8 == 0 and time.perf_counter() >= deadline:
            break
    return done / max(time.process_time() - start, 1e-9)


def median_rate(
    match: Callable[[dict[str, Any]], object], events: Sequence[dict[str, Any]], runs: int, budget: float | None
) -> float:
    return statistics.median(rate(match, events, budget) for _ in range(runs))


def moto_matcher(patterns: Sequence[dict[str, Any]]) -> Callable[[dict[str, Any]], object] | None:
    try:
        from moto.events.models import EventPattern  # noqa: PLC0415 -- optional baseline, measured only when moto is installed
    except ImportError:
        return None
    compiled = [EventPattern.load(json.dumps(pattern)) for pattern in patterns]

    def match(event: dict[str, Any]) -> list[int]:
        return [i for i, pattern in enumerate(compiled) if pattern.matches_event(event)]

    return match


def measure(
    size: int, events: list[dict[str, Any]], seed: int, *, with_moto: bool, tenants: int = TENANTS
) -> dict[str, Any]:
    rng = random.Random(seed + size)
    subscriptions = [make_subscription(rng, tenants) for _ in range(size)]
    targets = [
        IntegrationTarget(name=f"target-{i:05d}", endpoint="https://hooks.example.com/cx", event_pattern=s.pattern)
        for i, s in enumerate(subscriptions)
    ]
    table = RoutingTable(targets)
    # Sanity: the index agrees with the reference evaluator on a sample of events.
    rules = [compile_target_rule(target) for target in targets]
    for event in events[: max(20, 200_000 // size)]:
        expected = sorted(rule.name for rule in rules if rule.matches(event))
        if table.match(event) != expected:
            raise SystemExit(f"index and reference evaluator disagree at {size} targets on {event['id']}")
    tutorial = TutorialRouter(
        [
            TutorialTarget(target.name, [EventFilter.model_validate(f) for f in s.filters])
            for target, s in zip(targets, subscriptions, strict=True)
        ]
    )
    moto = moto_matcher([s.pattern for s in subscriptions]) if with_moto else None
    return {
        "targets": size,
        "engine": round(median_rate(table.match, events, ENGINE_RUNS, None)),
        "linear_scan": round(median_rate(tutorial.match_event, events, BASELINE_RUNS, BASELINE_SECONDS)),
        "moto": round(median_rate(moto, events, BASELINE_RUNS, BASELINE_SECONDS)) if moto else None,
    }


def render(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'targets':>8}  {'engine ev/s':>12}  {'linear scan ev/s':>16}  {'moto ev/s':>10}  {'engine / linear':>15}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        moto = f"{row['moto']:,}" if row["moto"] is not None else "n/a"
        speedup = row["engine"] / row["linear_scan"] if row["linear_scan"] else float("inf")
        lines.append(
            f"{row['targets']:>8,}  {row['engine']:>12,}  {row['linear_scan']:>16,}  {moto:>10}  {speedup:>14,.0f}x"
        )
    first, last = rows[0], rows[-1]
    lines.append("")
    lines.append(
        f"engine at {last['targets']:,} targets is {first['engine'] / last['engine']:.2f}x slower than at "
        f"{first['targets']:,}; {last['engine'] / last['linear_scan']:,.0f}x the linear scan"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one compact JSON object per row")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated target counts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-moto", action="store_true", help="skip the moto baseline")
    parser.add_argument(
        "--targets-per-tenant",
        type=int,
        default=0,
        help="scale the tenants with the targets (default: 2,000 tenants at every size)",
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    rows = []
    for size in sizes:
        # By default every size sees the same 2,000 tenants; --targets-per-tenant keeps the number of
        # targets an event concerns constant instead, to show what the table's size alone costs.
        tenants = max(1, size // args.targets_per_tenant) if args.targets_per_tenant else TENANTS
        rng = random.Random(args.seed)
        events = [make_event(rng, n, tenants) for n in range(EVENT_COUNT)]
        row = measure(size, events, args.seed, with_moto=not args.no_moto, tenants=tenants)
        rows.append(row)
        if args.json:
            print(json.dumps(row, separators=(",", ":")), flush=True)
    if not args.json:
        scope = f"{args.targets_per_tenant} targets per tenant" if args.targets_per_tenant else f"{TENANTS:,} tenants"
        print(f"{EVENT_COUNT:,} events of 18 leaf fields, {scope}; events per CPU second, medians of runs")
        print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
