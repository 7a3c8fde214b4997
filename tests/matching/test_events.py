"""Event flattening: the path semantics, and bounded work on hostile events (never a RecursionError)."""

from __future__ import annotations

from typing import Any

import pytest

from cxone_eventbridge.matching import RoutingTable, compile_pattern, flatten_event
from cxone_eventbridge.matching.events import MAX_PATH_SEGMENTS, path_reader
from cxone_eventbridge.models import IntegrationTarget

# These cases prove results and the absence of RecursionError on hostile shapes. Their cost is not timed
# here (a shared machine makes wall-clock bounds flaky): the per-event work bound is counted in units by
# tests/matching/test_match_work.py, and speed is measured by benchmarks/bench_match*.py.


def table(*patterns: dict[str, Any]) -> RoutingTable:
    return RoutingTable(
        IntegrationTarget(name=f"t{i}", endpoint="https://h.example.com", event_pattern=p)
        for i, p in enumerate(patterns)
    )


def test_flatten_joins_keys_and_crushes_arrays() -> None:
    """Paths join keys with dots, arrays give each element to their path, arrays of objects are traversed."""
    event = {"a": {"b": 1, "c": [2, [3, {"d": 4}]]}, "a.b": 5, "e": [], "f": {}, "g": None}
    flat = {path: sorted(values, key=repr) for path, values in flatten_event(event).items()}
    assert flat == {"a.b": [1, 5], "a.c": [2, 3], "a.c.d": [4], "g": [None]}


def test_path_reader_agrees_with_flatten() -> None:
    """The direct lookup of one path gives the values flattening gives, dotted event keys included."""
    event = {"a": {"b": {"c": 1}, "b.c": 2}, "a.b": {"c": [3, {"x": 1}]}, "a.b.c": 4, "l": [{"m": 1}, [{"m": 2}]]}
    flat = flatten_event(event)
    for path in ["a.b.c", "a.b", "a", "l.m", "l", "x", "a.b.c.d"]:
        assert sorted(path_reader(path)(event)) == sorted(flat.get(path, [])), path


def test_non_json_values_and_keys_are_skipped() -> None:
    """Values that are not JSON (sets, objects) and non-string keys are ignored rather than matched."""
    event: dict[Any, Any] = {"a": {1, 2}, 3: "x", "b": object(), "c": "ok"}
    assert flatten_event(event) == {"c": ["ok"]}
    assert compile_pattern({"a": [{"exists": False}], "c": ["ok"]}).matches(event) is True


def test_ten_thousand_deep_event() -> None:
    """An event nested 10,000 deep is matched without RecursionError."""
    event: dict[str, Any] = {"leaf": "x"}
    for _ in range(10_000):
        event = {"n": event}
    event["top"] = "y"
    assert compile_pattern({"top": ["y"]}).matches(event) is True
    assert table({"top": ["y"]}, {"n": {"n": {"leaf": [{"exists": True}]}}}).match(event) == ["t0"]
    assert flatten_event(event)["top"] == ["y"]


def test_paths_deeper_than_the_limit_are_out_of_reach() -> None:
    """Objects nested deeper than MAX_PATH_SEGMENTS are skipped; no pattern can name them anyway."""
    event: dict[str, Any] = {"leaf": "x"}
    for _ in range(MAX_PATH_SEGMENTS):
        event = {"n": event}
    assert "leaf" not in "".join(flatten_event(event))
    reachable: dict[str, Any] = {"leaf": "x"}
    for _ in range(MAX_PATH_SEGMENTS - 1):
        reachable = {"n": reachable}
    assert flatten_event(reachable) == {".".join(["n"] * (MAX_PATH_SEGMENTS - 1) + ["leaf"]): ["x"]}


def test_ten_thousand_deep_arrays() -> None:
    """Arrays nested 10,000 deep are crushed iteratively."""
    nested: Any = "x"
    for _ in range(10_000):
        nested = [nested]
    event = {"a": nested}
    assert flatten_event(event) == {"a": ["x"]}
    assert table({"a": ["x"]}).match(event) == ["t0"]


def test_megabyte_strings() -> None:
    """Megabyte strings go through every string operator."""
    big = "a" * 2_000_000 + "b"
    patterns = [
        {"s": [{"prefix": "aaa"}]},
        {"s": [{"suffix": "ab"}]},
        {"s": [{"wildcard": "a*a*b"}]},
        {"s": [{"anything-but": {"wildcard": "*c*"}}]},
        {"s": [{"equals-ignore-case": "A" * 1000}]},
        {"s": [{"cidr": "10.0.0.0/8"}]},
        {"s": ["a" * 1000]},
        {"s": [{"prefix": {"equals-ignore-case": "AAA"}}]},
    ]
    assert table(*patterns).match({"s": big}) == ["t0", "t1", "t2", "t3", "t7"]


def test_hundred_thousand_element_arrays() -> None:
    """A 100,000-element array is scanned once per path."""
    event = {"items": [{"id": i, "kind": "x"} for i in range(100_000)], "tags": [str(i) for i in range(100_000)]}
    matched = table({"items": {"id": [99_999]}}, {"tags": ["99999"]}, {"items": {"kind": ["y"]}}).match(event)
    assert matched == ["t0", "t1"]


@pytest.mark.parametrize("depth", [1, 500, 5_000])
def test_deep_event_with_many_paths_named(depth: int) -> None:
    """The walking mode (many paths named) prunes deep subtrees no rule names."""
    event: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth):
        event = {"n": event}
    many = [{f"p{i}": {"q": [i]}} for i in range(40)]
    assert table(*many, {"n": {"leaf": ["x"]}}).match(event) == (["t40"] if depth == 1 else [])
