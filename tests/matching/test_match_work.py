"""Matching one event takes bounded work: an event too costly for the table is refused, not matched for a minute."""

from __future__ import annotations

from typing import Any

import pytest

from cxone_eventbridge.matching import InvalidEventError, RoutingTable
from cxone_eventbridge.matching.index import MAX_MATCH_WORK
from cxone_eventbridge.models import EventFilter, IntegrationTarget


def target(name: str, pattern: Any = None, filters: list[dict[str, Any]] | None = None) -> IntegrationTarget:
    return IntegrationTarget(
        name=name,
        endpoint="https://h.example.com/hook",
        event_pattern=pattern,
        event_filters=[EventFilter.model_validate(f) for f in filters or []],
    )


def scanning_targets(count: int) -> list[IntegrationTarget]:
    """Targets whose only clause on ``tags`` is a regex, a wildcard or a contains: none can be hashed."""
    made = []
    for n in range(count):
        if n % 3 == 0:
            made.append(target(f"t{n}", filters=[{"field": "tags", "operator": "regex", "value": f"^zz{n}[a-z]+x$"}]))
        elif n % 3 == 1:
            made.append(target(f"t{n}", filters=[{"field": "tags", "operator": "contains", "value": f"zz{n}q"}]))
        else:
            made.append(target(f"t{n}", {"tags": [{"wildcard": f"zz{n}*q*x"}]}))
    return made


@pytest.mark.parametrize("direct_lookup_paths", [32, 0])
def test_many_values_against_many_scanning_anchors_is_refused(direct_lookup_paths: int) -> None:
    """100 non-indexed anchors x 2,000 array elements is over the bound: InvalidEventError saying why (1,000 x 25,000 took 66 s)."""
    table = RoutingTable(scanning_targets(100), direct_lookup_paths=direct_lookup_paths)
    hostile = {"tags": [f"value-{n:06d}" for n in range(2_000)]}
    with pytest.raises(InvalidEventError, match="units of work"):
        table.match(hostile)
    assert table.match({"tags": ["zz1q", "nothing"]}) == ["t1"]


def test_one_long_string_counts_by_its_length() -> None:
    """A 128 KB string scanned by 100 contains anchors costs 100 x 513 units: over the bound."""
    table = RoutingTable(scanning_targets(100))
    with pytest.raises(InvalidEventError, match="units of work"):
        table.match({"tags": "a" * 131_072})
    assert table.match({"tags": "a" * 10_000 + "zz4q"}) == ["t4"]


@pytest.mark.parametrize("direct_lookup_paths", [32, 0])
def test_checks_after_an_indexed_anchor_count_too(direct_lookup_paths: int) -> None:
    """A regex checked after an exact anchor is charged per value: 10 values fit a bound of 10, 11 do not."""
    rule = target(
        "r", {"eventType": ["call.ended"]}, filters=[{"field": "tags", "operator": "regex", "value": "^vip$"}]
    )
    table = RoutingTable([rule], direct_lookup_paths=direct_lookup_paths, max_match_work=10)
    assert table.match({"eventType": "call.ended", "tags": ["x"] * 9 + ["vip"]}) == ["r"]
    with pytest.raises(InvalidEventError, match="more than 10 units"):
        table.match({"eventType": "call.ended", "tags": ["x"] * 10 + ["vip"]})
    # Hash lookups are free: the same values under an exact anchor alone never count.
    exact = RoutingTable([target("e", {"tags": ["vip"]})], max_match_work=10)
    assert exact.match({"tags": ["x"] * 10_000 + ["vip"]}) == ["e"]


def test_the_default_bound_leaves_room_for_ordinary_events() -> None:
    """1,000 scanning targets and an event with 40 tags of 100 characters is within the bound."""
    table = RoutingTable(scanning_targets(1_000))
    assert table.match({"tags": ["x" * 100] * 39 + ["zz7q"]}) == ["t7"]
    assert MAX_MATCH_WORK == 50_000
