"""Every EventBridge operator against the AWS documentation's examples, matching and not matching."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.matching import InvalidEventError, RoutingTable, compile_pattern
from cxone_eventbridge.models import IntegrationTarget

# The sample event of the EventBridge and Event Ruler documentation.
EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "012345679012",
    "time": "2017-10-02T16:24:49Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.33",
        "instance-id": "i-000000aaaaaa00000",
        "state": "running",
    },
}


def both(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """The reference evaluator's answer, after checking that the routing table gives the same one."""
    compiled = compile_pattern(pattern)
    result = compiled.matches(event)
    table = RoutingTable([IntegrationTarget(name="t", endpoint="https://h.example.com", event_pattern=pattern)])
    assert table.match(event) == (["t"] if result else [])
    assert type(result) is bool
    return result


def with_detail(**detail: Any) -> dict[str, Any]:
    return {**EC2_EVENT, "detail": {**EC2_EVENT["detail"], **detail}}


CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # Simple matching: exact values; an event array matches when it intersects the pattern's array.
    (
        "exact values and arrays",
        {
            "detail-type": ["EC2 Instance State-change Notification"],
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
            "detail": {"state": ["initializing", "running"]},
        },
        EC2_EVENT,
        True,
    ),
    ("exact value, other state", {"detail": {"state": ["initializing"]}}, EC2_EVENT, False),
    ("exact is case-sensitive", {"source": ["AWS.EC2"]}, EC2_EVENT, False),
    ("all fields must match (AND)", {"source": ["aws.ec2"], "region": ["eu-west-1"]}, EC2_EVENT, False),
    ("missing field never matches a value", {"detail": {"nope": ["running"]}}, EC2_EVENT, False),
    # Null and empty strings are not interchangeable.
    ("empty string", {"detail": {"eventVersion": [""]}}, {"detail": {"eventVersion": ""}}, True),
    ("empty string is not null", {"detail": {"eventVersion": [""]}}, {"detail": {"eventVersion": None}}, False),
    ("null", {"detail": {"responseElements": [None]}}, {"detail": {"responseElements": None}}, True),
    (
        "null is not an empty string",
        {"detail": {"responseElements": [None]}},
        {"detail": {"responseElements": ""}},
        False,
    ),
    ("null is not absence", {"detail": {"responseElements": [None]}}, {"detail": {}}, False),
    # Numbers compare numerically; booleans and null are type-strict.
    ("number equals float", {"detail": {"c-count": [5.0]}}, EC2_EVENT, True),
    ("number is not its string", {"detail": {"c-count": ["5"]}}, EC2_EVENT, False),
    ("string is not its number", {"a": [5]}, {"a": "5"}, False),
    ("true is not 1", {"a": [True]}, {"a": 1}, False),
    ("1 is not true", {"a": [1]}, {"a": True}, False),
    ("false is not 0", {"a": [False]}, {"a": 0}, False),
    ("true matches true", {"a": [True]}, {"a": True}, True),
    ("null is not false", {"a": [None]}, {"a": False}, False),
    # Prefix.
    ("prefix", {"time": [{"prefix": "2017-10-02"}]}, EC2_EVENT, True),
    ("prefix, other day", {"time": [{"prefix": "2017-10-03"}]}, EC2_EVENT, False),
    ("prefix only on strings", {"detail": {"c-count": [{"prefix": "5"}]}}, EC2_EVENT, False),
    (
        "prefix ignoring case",
        {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}},
        {"detail": {"service": "eventbridge"}},
        True,
    ),
    (
        "prefix ignoring case, other start",
        {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}},
        {"detail": {"service": "lambda"}},
        False,
    ),
    # Suffix.
    ("suffix", {"FileName": [{"suffix": ".png"}]}, {"FileName": "image.png"}, True),
    ("suffix, other extension", {"FileName": [{"suffix": ".png"}]}, {"FileName": "image.jpg"}, False),
    ("suffix is case-sensitive", {"FileName": [{"suffix": ".png"}]}, {"FileName": "image.PNG"}, False),
    (
        "suffix ignoring case",
        {"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}},
        {"detail": {"FileName": "IMAGE.PNG"}},
        True,
    ),
    (
        "suffix ignoring case, other extension",
        {"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}},
        {"detail": {"FileName": "image.gif"}},
        False,
    ),
    # Equals-ignore-case.
    (
        "equals-ignore-case",
        {"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]},
        EC2_EVENT,
        True,
    ),
    ("equals-ignore-case, other text", {"source": [{"equals-ignore-case": "AWS.S3"}]}, EC2_EVENT, False),
    ("equals-ignore-case only on strings", {"a": [{"equals-ignore-case": "1"}]}, {"a": 1}, False),
    # Anything-but: strings, numbers, lists, prefix, suffix, ignoring case, wildcard.
    ("anything-but string", {"detail": {"state": [{"anything-but": "initializing"}]}}, EC2_EVENT, True),
    ("anything-but string, excluded", {"detail": {"state": [{"anything-but": "running"}]}}, EC2_EVENT, False),
    ("anything-but number", {"detail": {"x-limit": [{"anything-but": 123}]}}, EC2_EVENT, True),
    ("anything-but number, excluded", {"detail": {"x-limit": [{"anything-but": 301.8}]}}, EC2_EVENT, False),
    (
        "anything-but list of strings",
        {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
        EC2_EVENT,
        True,
    ),
    (
        "anything-but list of strings, excluded",
        {"detail": {"state": [{"anything-but": ["stopped", "running"]}]}},
        EC2_EVENT,
        False,
    ),
    ("anything-but list of numbers", {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}, EC2_EVENT, True),
    (
        "anything-but list of numbers, excluded",
        {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}},
        with_detail(**{"x-limit": 200}),
        False,
    ),
    ("anything-but needs the field", {"detail": {"missing": [{"anything-but": "x"}]}}, EC2_EVENT, False),
    ("anything-but prefix", {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, EC2_EVENT, True),
    (
        "anything-but prefix, excluded",
        {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}},
        with_detail(state="initializing"),
        False,
    ),
    ("anything-but suffix", {"FileName": [{"anything-but": {"suffix": ".txt"}}]}, {"FileName": "a.png"}, True),
    (
        "anything-but suffix, excluded",
        {"FileName": [{"anything-but": {"suffix": ".txt"}}]},
        {"FileName": "a.txt"},
        False,
    ),
    (
        "anything-but ignoring case",
        {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}]}},
        EC2_EVENT,
        True,
    ),
    (
        "anything-but ignoring case, excluded",
        {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}]}},
        with_detail(state="STOPPED"),
        False,
    ),
    (
        "anything-but wildcard",
        {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"FilePath": "/usr/bin/python"},
        True,
    ),
    (
        "anything-but wildcard, excluded",
        {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"FilePath": "/usr/lib/python"},
        False,
    ),
    (
        "anything-but wildcard list",
        {"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]},
        {"FilePath": "/usr/bin/python"},
        False,
    ),
    ("anything-but, one array element differs", {"a": [{"anything-but": "x"}]}, {"a": ["x", "y"]}, True),
    ("anything-but, every array element excluded", {"a": [{"anything-but": "x"}]}, {"a": ["x", "x"]}, False),
    # Numeric.
    (
        "numeric ranges",
        {
            "detail": {
                "c-count": [{"numeric": [">", 0, "<=", 5]}],
                "d-count": [{"numeric": ["<", 10]}],
                "x-limit": [{"numeric": ["=", 3.018e2]}],
            }
        },
        EC2_EVENT,
        True,
    ),
    ("numeric upper bound excluded", {"detail": {"c-count": [{"numeric": [">", 0, "<", 5]}]}}, EC2_EVENT, False),
    ("numeric lower bound", {"detail": {"c-count": [{"numeric": [">=", 5]}]}}, EC2_EVENT, True),
    ("numeric lower bound excluded", {"detail": {"c-count": [{"numeric": [">", 5]}]}}, EC2_EVENT, False),
    ("numeric equals, other value", {"detail": {"x-limit": [{"numeric": ["=", 300]}]}}, EC2_EVENT, False),
    ("numeric only on numbers", {"a": [{"numeric": [">", 0]}]}, {"a": "5"}, False),
    ("numeric never on booleans", {"a": [{"numeric": [">", 0]}]}, {"a": True}, False),
    ("numeric never on NaN", {"a": [{"numeric": [">", 0]}]}, {"a": float("nan")}, False),
    ("numeric upper bound, NaN", {"a": [{"numeric": ["<", 0]}]}, {"a": float("nan")}, False),
    ("numeric on infinity", {"a": [{"numeric": [">", 0]}]}, {"a": float("inf")}, True),
    # IP addresses.
    ("cidr", {"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}, EC2_EVENT, True),
    ("cidr, outside", {"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}, EC2_EVENT, False),
    ("cidr IPv6", {"sourceIPAddress": [{"cidr": "2001:db8::/64"}]}, {"sourceIPAddress": "2001:db8::1"}, True),
    ("cidr IPv6, outside", {"sourceIPAddress": [{"cidr": "2001:db8::/64"}]}, {"sourceIPAddress": "2001:db9::1"}, False),
    ("cidr IPv4 never matches IPv6", {"ip": [{"cidr": "0.0.0.0/0"}]}, {"ip": "::1"}, False),
    ("cidr, not an address", {"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "10.0.0.256"}, False),
    ("cidr, leading zeros are not an address", {"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "10.0.0.010"}, False),
    # Exists (leaf nodes only).
    ("exists true", {"detail": {"state": [{"exists": True}]}}, EC2_EVENT, True),
    ("exists true, absent", {"detail": {"nope": [{"exists": True}]}}, EC2_EVENT, False),
    ("exists false, absent", {"detail": {"c-count": [{"exists": False}]}}, {"detail": {"state": "x"}}, True),
    ("exists false, present", {"detail": {"c-count": [{"exists": False}]}}, EC2_EVENT, False),
    (
        "exists false on an intermediate node",
        {"detail": {"c-count": [{"exists": False}]}},
        {"detail": {"c-count": {"c1": 100}}},
        True,
    ),
    ("exists true on an intermediate node", {"detail": [{"exists": True}]}, EC2_EVENT, False),
    ("exists true on null", {"a": [{"exists": True}]}, {"a": None}, True),
    ("exists false or a value, value", {"a": [{"exists": False}, "x"]}, {"a": "x"}, True),
    ("exists false or a value, other value", {"a": [{"exists": False}, "x"]}, {"a": "y"}, False),
    # Wildcard.
    (
        "wildcard",
        {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]},
        {"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"},
        True,
    ),
    (
        "wildcard, other region",
        {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]},
        {"EventBusArn": "arn:aws:events:eu-west-1:123456789012:event-bus/default"},
        False,
    ),
    ("wildcard spans slashes", {"FileName": [{"wildcard": "dir/*.png"}]}, {"FileName": "dir/sub/a.png"}, True),
    ("wildcard, other extension", {"FileName": [{"wildcard": "dir/*.png"}]}, {"FileName": "dir/a.jpg"}, False),
    ("wildcard without a star is exact", {"a": [{"wildcard": "abc"}]}, {"a": "abcd"}, False),
    ("wildcard star alone", {"a": [{"wildcard": "*"}]}, {"a": ""}, True),
    ("wildcard middle pieces in order", {"a": [{"wildcard": "a*b*c"}]}, {"a": "axcxb"}, False),
    ("wildcard pieces may not overlap", {"a": [{"wildcard": "ab*ba"}]}, {"a": "aba"}, False),
    ("wildcard escaped star", {"a": [{"wildcard": "a\\*b"}]}, {"a": "a*b"}, True),
    ("wildcard escaped star is literal", {"a": [{"wildcard": "a\\*b"}]}, {"a": "axb"}, False),
    ("wildcard escaped backslash", {"a": [{"wildcard": "a\\\\*"}]}, {"a": "a\\tail"}, True),
    ("wildcard only on strings", {"a": [{"wildcard": "1*"}]}, {"a": 12}, False),
    # $or.
    (
        "$or across fields",
        {
            "$or": [
                {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}},
                {"detail": {"d-count": [{"numeric": ["<", 10]}]}},
            ]
        },
        with_detail(**{"c-count": 50}),
        True,
    ),
    (
        "$or, no alternative holds",
        {"$or": [{"detail": {"c-count": [{"numeric": ["<", 0]}]}}, {"detail": {"d-count": [{"numeric": [">", 10]}]}}]},
        EC2_EVENT,
        False,
    ),
    (
        "$or with AND siblings",
        {"source": ["aws.ec2"], "$or": [{"region": ["eu-west-1"]}, {"account": ["012345679012"]}]},
        EC2_EVENT,
        True,
    ),
    (
        "$or with AND siblings, sibling fails",
        {"source": ["aws.s3"], "$or": [{"region": ["us-east-1"]}, {"account": ["012345679012"]}]},
        EC2_EVENT,
        False,
    ),
    (
        "nested $or inside an object",
        {"detail": {"$or": [{"state": ["stopped"]}, {"$or": [{"c-count": [4]}, {"d-count": [3]}]}]}},
        EC2_EVENT,
        True,
    ),
    # Nested objects and dotted keys are the same path, in patterns and in events.
    ("dotted key in the pattern", {"detail.state": ["running"]}, EC2_EVENT, True),
    ("dotted key in the event", {"detail": {"state": ["running"]}}, {"detail.state": "running"}, True),
    ("nested object is not a scalar", {"detail": ["running"]}, EC2_EVENT, False),
    # Arrays of objects are traversed.
    (
        "array of objects",
        {"employees": {"firstName": ["Anna"]}},
        {"employees": [{"firstName": "John"}, {"firstName": "Anna"}]},
        True,
    ),
    (
        "array of arrays of objects",
        {"employees": {"firstName": ["Peter"]}},
        {"employees": [[{"firstName": "John"}], [{"firstName": "Peter"}]]},
        True,
    ),
    ("array, no element matches", {"tags": ["vip"]}, {"tags": ["a", "b"]}, False),
    ("empty array is absent", {"tags": [{"exists": False}]}, {"tags": []}, True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_documented_examples(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """Each operator matches (and fails to match) the documentation's examples, in both engines."""
    assert both(pattern, event) is expected


def test_json_string_pattern_compiles_like_its_dict() -> None:
    """A pattern given as JSON text compiles to the same source and answers as the dict."""
    pattern = {"detail": {"state": ["running"]}, "time": [{"prefix": "2017"}]}
    compiled = compile_pattern(json.dumps(pattern))
    assert compiled.source == pattern
    assert compiled.matches(EC2_EVENT) is True


def test_source_is_a_json_copy() -> None:
    """``source`` is a plain JSON copy: tuples become lists and later edits of the input do not leak in."""
    pattern: dict[str, Any] = {"a": ("x", "y")}
    compiled = compile_pattern(pattern)
    pattern["b"] = ["z"]
    assert compiled.source == {"a": ["x", "y"]}


def test_integration_target_stores_the_validated_source() -> None:
    """models.IntegrationTarget validates eventPattern with compile_pattern and keeps its JSON form."""
    target = IntegrationTarget(name="t", endpoint="https://h.example.com", event_pattern='{"a": [1]}')  # type: ignore[arg-type]
    assert target.event_pattern == {"a": [1]}


@pytest.mark.parametrize("event", [None, [], "text", 5, True, [{"a": 1}]])
def test_non_object_events_are_rejected(event: object) -> None:
    """Matching anything but a JSON object raises InvalidEventError (an input error) naming its type."""
    compiled = compile_pattern({"a": [1]})
    with pytest.raises(InvalidEventError, match="must be a JSON object") as caught:
        compiled.matches(event)
    assert isinstance(caught.value, InputError)
    with pytest.raises(InvalidEventError):
        RoutingTable().match(event)
