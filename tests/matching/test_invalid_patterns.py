"""Every class of invalid pattern is refused when compiled, with a reason naming where the problem is."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from cxone_eventbridge.matching import (
    MAX_COMBINATIONS,
    MAX_PATTERN_CHARS,
    MAX_PATTERN_DEPTH,
    MAX_VALUES_PER_FIELD,
    InvalidPatternError,
    compile_pattern,
)
from cxone_eventbridge.models import IntegrationTarget

INVALID: list[tuple[str, Any, str]] = [
    # Not a pattern at all.
    ("not JSON", "{", "not valid JSON"),
    ("JSON but not an object", "[1]", "must be a JSON object, not an array"),
    ("a number", 5, "must be a JSON object, not a number"),
    ("None", None, "must be a JSON object, not null"),
    ("NaN in JSON", '{"a": [NaN]}', "an event pattern is not valid JSON: NaN is not a JSON number"),
    ("integer too long to read", '{"a": [' + "9" * 5000 + "]}", "not valid JSON: Exceeds the limit"),
    ("not UTF-8", b'{"a": ["\xff"]}', "it is not UTF-8 text"),
    ("empty pattern", {}, "must not be empty"),
    # Structure.
    (
        "leaf is not an array",
        {"source": "aws.ec2"},
        "source: must be an object or an array of match values, not a string",
    ),
    ("leaf is a number", {"detail": {"count": 5}}, "detail.count: must be an object or an array"),
    ("empty array", {"source": []}, "source: must not be an empty array"),
    ("empty object", {"detail": {}}, "detail: must not be an empty object"),
    ("empty field name", {"": ["x"]}, "field names must not be empty"),
    ("empty dotted segment", {"a..b": ["x"]}, "empty dotted segment"),
    ("nested array as a value", {"a": [["x"]]}, "a[0]: match values must be strings, numbers"),
    ("infinite number", {"a": [float("inf")]}, "a[0]: numbers must be finite"),
    # Operators.
    ("unknown operator", {"a": [{"contains": "x"}]}, "a[0]: unrecognized match type 'contains'"),
    ("two keys in an operator", {"a": [{"prefix": "x", "suffix": "y"}]}, "exactly one key, not 2"),
    ("empty operator object", {"a": [{}]}, "exactly one key, not 0"),
    ("prefix of a number", {"a": [{"prefix": 5}]}, "a[0].prefix: must be a string"),
    (
        "suffix ignoring case of a number",
        {"a": [{"suffix": {"equals-ignore-case": 5}}]},
        "must be a string, not a number",
    ),
    ("prefix with an unknown option", {"a": [{"prefix": {"wildcard": "x"}}]}, 'or {"equals-ignore-case": string}'),
    ("equals-ignore-case of a list", {"a": [{"equals-ignore-case": ["x"]}]}, "must be a string, not an array"),
    ("exists of a string", {"a": [{"exists": "yes"}]}, "a[0].exists: must be true or false"),
    ("cidr malformed", {"ip": [{"cidr": "10.0.0.0/33"}]}, "malformed CIDR '10.0.0.0/33'"),
    ("cidr of a number", {"ip": [{"cidr": 10}]}, "must be a string like 10.0.0.0/24"),
    # Anything-but.
    ("anything-but null", {"a": [{"anything-but": None}]}, "a[0].anything-but: must be a string, a number"),
    ("anything-but boolean", {"a": [{"anything-but": True}]}, "not a boolean"),
    ("anything-but empty list", {"a": [{"anything-but": []}]}, "must not be an empty array"),
    ("anything-but mixed list", {"a": [{"anything-but": ["x", 1]}]}, "only strings or only (finite) numbers"),
    ("anything-but list with null", {"a": [{"anything-but": ["x", None]}]}, "only strings or only"),
    ("anything-but empty prefix", {"a": [{"anything-but": {"prefix": ""}}]}, "must be a non-empty string"),
    (
        "anything-but numeric",
        {"a": [{"anything-but": {"numeric": [">", 1]}}]},
        "anything-but does not support 'numeric'",
    ),
    (
        "anything-but wildcard of a number",
        {"a": [{"anything-but": {"wildcard": 5}}]},
        "a string or a non-empty array of strings",
    ),
    # Numeric.
    ("numeric not an array", {"a": [{"numeric": 5}]}, "a[0].numeric: must be a non-empty array"),
    ("numeric empty", {"a": [{"numeric": []}]}, "must be a non-empty array"),
    ("numeric odd length", {"a": [{"numeric": [">", 1, "<"]}]}, "one or two (operator, number) pairs"),
    ("numeric too long", {"a": [{"numeric": [">", 1, "<", 5, "<", 6]}]}, "one or two (operator, number) pairs"),
    ("numeric unknown operator", {"a": [{"numeric": ["!=", 1]}]}, "unrecognized numeric operator '!='"),
    (
        "numeric value is a string",
        {"a": [{"numeric": [">", "1"]}]},
        "a[0].numeric[1]: must be a finite number, not a string",
    ),
    ("numeric value is a boolean", {"a": [{"numeric": [">", True]}]}, "must be a finite number, not a boolean"),
    ("numeric equals combined", {"a": [{"numeric": ["=", 1, "<", 5]}]}, '"=" cannot be combined'),
    ("numeric two lower bounds", {"a": [{"numeric": [">", 1, ">=", 2]}]}, "has two lower bounds"),
    ("numeric two upper bounds", {"a": [{"numeric": ["<", 1, "<=", 2]}]}, "has two upper bounds"),
    ("numeric empty range", {"a": [{"numeric": [">", 5, "<", 1]}]}, "lower bound must be less than the upper bound"),
    ("numeric open point", {"a": [{"numeric": [">", 5, "<=", 5]}]}, "lower bound must be less than the upper bound"),
    # Wildcard.
    ("wildcard double star", {"a": [{"wildcard": "a**b"}]}, "consecutive wildcard characters at position 2"),
    ("wildcard bad escape", {"a": [{"wildcard": "a\\b"}]}, "invalid escape at position 1"),
    ("wildcard trailing backslash", {"a": [{"wildcard": "a\\"}]}, "invalid escape at position 1"),
    ("wildcard of a number", {"a": [{"wildcard": 5}]}, "a[0].wildcard: must be a string"),
    # $or.
    ("$or not an array", {"$or": {"a": ["x"]}}, "$or: must be an array of at least two objects"),
    ("$or with one alternative", {"$or": [{"a": ["x"]}]}, "at least two objects"),
    ("$or with a non-object", {"$or": [{"a": ["x"]}, ["b"]]}, "$or[1]: must be a non-empty object, not an array"),
    ("$or with an empty object", {"$or": [{"a": ["x"]}, {}]}, "$or[1]: must be a non-empty object"),
    ("error inside $or", {"d": {"$or": [{"a": ["x"]}, {"b": "y"}]}}, "d.$or[1].b: must be an object or an array"),
]


@pytest.mark.parametrize(("pattern", "reason"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_pattern_is_refused_with_a_reason(pattern: Any, reason: str) -> None:
    """The pattern raises InvalidPatternError (a ValueError) whose message names the problem and its place."""
    with pytest.raises(InvalidPatternError) as caught:
        compile_pattern(pattern)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_integers_beyond_float_range_are_numbers() -> None:
    """An integer too large for a float is still a finite number: accepted, and compared exactly."""
    big = 10**400
    assert compile_pattern({"a": [big]}).matches({"a": big}) is True
    assert compile_pattern({"a": [big]}).matches({"a": big + 1}) is False
    assert compile_pattern({"a": [{"anything-but": [big]}]}).matches({"a": 1}) is True
    assert compile_pattern({"a": [{"numeric": [">", big]}]}).matches({"a": big * 10}) is True


def test_every_problem_is_reported_at_once() -> None:
    """Several invalid fields are all named in one error."""
    with pytest.raises(InvalidPatternError) as caught:
        compile_pattern({"a": "x", "b": [], "c": [{"nope": 1}]})
    message = str(caught.value)
    assert "a: must be" in message
    assert "b: must not be an empty array" in message
    assert "c[0]: unrecognized match type 'nope'" in message


def test_too_deep_pattern_is_refused() -> None:
    """A pattern nested deeper than the limit is refused, even one far too deep for Python's recursion."""
    deep: dict[str, Any] = {"leaf": ["x"]}
    for _ in range(MAX_PATTERN_DEPTH):
        deep = {"n": deep}
    with pytest.raises(InvalidPatternError, match=f"the limit is {MAX_PATTERN_DEPTH}"):
        compile_pattern(deep)
    hostile: dict[str, Any] = {"leaf": ["x"]}
    for _ in range(50_000):
        hostile = {"n": hostile}
    with pytest.raises(InvalidPatternError, match="deep"):
        compile_pattern(hostile)
    with pytest.raises(InvalidPatternError, match="nested too deeply"):
        compile_pattern('{"a":' * 5_000 + "[1]" + "}" * 5_000)


def test_dotted_keys_count_towards_depth() -> None:
    """A dotted key of more segments than the limit is refused like the nesting it stands for."""
    with pytest.raises(InvalidPatternError, match="fields deep"):
        compile_pattern({".".join(["s"] * (MAX_PATTERN_DEPTH + 1)): ["x"]})
    assert compile_pattern({".".join(["s"] * MAX_PATTERN_DEPTH): ["x"]})


def test_deeply_nested_or_is_refused() -> None:
    """$or inside $or counts as nesting, so alternatives cannot nest without bound."""
    pattern: dict[str, Any] = {"a": ["x"]}
    for _ in range(MAX_PATTERN_DEPTH + 1):
        pattern = {"$or": [pattern, {"b": ["y"]}]}
    with pytest.raises(InvalidPatternError, match="levels deep; the limit is"):
        compile_pattern(pattern)


def test_values_per_field_limit() -> None:
    """A field may list at most MAX_VALUES_PER_FIELD values, in a leaf or an anything-but list."""
    assert compile_pattern({"a": list(range(MAX_VALUES_PER_FIELD))})
    with pytest.raises(InvalidPatternError, match=f"the limit is {MAX_VALUES_PER_FIELD}"):
        compile_pattern({"a": list(range(MAX_VALUES_PER_FIELD + 1))})
    with pytest.raises(InvalidPatternError, match=f"the limit is {MAX_VALUES_PER_FIELD}"):
        compile_pattern({"a": [{"anything-but": list(range(MAX_VALUES_PER_FIELD + 1))}]})


def test_pattern_size_limit() -> None:
    """A pattern longer than MAX_PATTERN_CHARS is refused, as text (before parsing) or as a dict."""
    values = [f"value-{i:05d}-" + "x" * 30 for i in range(900)]
    assert len(json.dumps({"a": values})) > MAX_PATTERN_CHARS
    with pytest.raises(InvalidPatternError, match=f"the limit is {MAX_PATTERN_CHARS}"):
        compile_pattern({"a": values})
    with pytest.raises(InvalidPatternError, match=f"the limit is {MAX_PATTERN_CHARS}"):
        compile_pattern(json.dumps({"a": values}))


def test_huge_pattern_stops_parsing_early() -> None:
    """A dict with a huge number of keys is refused after a bounded amount of work."""
    with pytest.raises(InvalidPatternError, match="keys and values"):
        compile_pattern({f"k{i}": ["x"] for i in range(100_000)})


def test_or_combinations_limit() -> None:
    """$or groups whose product exceeds MAX_COMBINATIONS are refused, as AWS limits rule complexity."""
    group = [{f"f{i}": ["x"]} for i in range(10)]
    assert compile_pattern({"$or": group, "d": {"$or": group, "e": {"$or": group}}})  # exactly 1,000
    assert MAX_COMBINATIONS == 1000
    with pytest.raises(InvalidPatternError, match="combinations"):
        compile_pattern({"$or": group, "d": {"$or": group, "e": {"$or": group}}, "z": {"$or": group[:2]}})


def test_target_with_invalid_pattern_names_the_field() -> None:
    """IntegrationTarget refuses an invalid eventPattern with the compiler's reason."""
    with pytest.raises(ValidationError) as caught:
        IntegrationTarget(name="t", endpoint="https://h.example.com", event_pattern={"a": [{"wildcard": "**"}]})
    assert "consecutive wildcard characters" in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"a": [{"prefx": "x"}]}, "a[0]: unrecognized match type 'prefx'; did you mean 'prefix'?"),
        ({"a": [{"numerc": [">", 1]}]}, "a[0]: unrecognized match type 'numerc'; did you mean 'numeric'?"),
        ({"a": [{"anything-bt": "x"}]}, "a[0]: unrecognized match type 'anything-bt'; did you mean 'anything-but'?"),
        (
            {"a": [{"anything-but": {"sufix": "x"}}]},
            "a[0].anything-but: anything-but does not support 'sufix'; did you mean 'suffix'?",
        ),
    ],
)
def test_a_misspelt_match_type_gets_did_you_mean(pattern: dict[str, Any], expected: str) -> None:
    """A match type close to a known one names it, as misspelt fields and filter operators do."""
    with pytest.raises(InvalidPatternError) as caught:
        compile_pattern(pattern)
    assert expected in str(caught.value)


def test_a_match_type_close_to_nothing_gets_no_guess() -> None:
    """`contains` resembles no match type: the message stays without a suggestion."""
    with pytest.raises(InvalidPatternError) as caught:
        compile_pattern({"a": [{"contains": "x"}]})
    assert "unrecognized match type 'contains'" in str(caught.value)
    assert "did you mean" not in str(caught.value)
