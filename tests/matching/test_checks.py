"""The specialised clause checks of the routing table give the reference evaluator's answers."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cxone_eventbridge.matching import compile_pattern
from cxone_eventbridge.matching.checks import clause_check
from cxone_eventbridge.matching.evaluate import clause_holds
from cxone_eventbridge.matching.ir import FieldClause

# One clause per kind of specialised check, and the fallbacks next to them.
LEAVES: list[list[Any]] = [
    ["a"],
    ["a", "ab", ""],
    [1, 2.5],
    [True, None],
    ["1", 1],
    [{"numeric": [">", 1]}],
    [{"numeric": [">=", 1]}],
    [{"numeric": ["<", 1]}],
    [{"numeric": ["<=", 1]}],
    [{"numeric": [">", 0, "<=", 2.5]}],
    [{"numeric": [">=", 0, "<", 2.5]}],
    [{"numeric": ["=", 1]}],
    [{"prefix": "ab"}],
    [{"prefix": ""}],
    [{"suffix": "b"}],
    [{"prefix": {"equals-ignore-case": "AB"}}],
    [{"equals-ignore-case": "aB"}],
    [{"anything-but": "a"}],
    [{"anything-but": [1, 2.5]}],
    [{"anything-but": {"prefix": "a"}}],
    [{"exists": True}],
    [{"exists": False}],
    [{"cidr": "203.0.113.0/25"}],
    [{"cidr": "10.0.0.0/8"}],
    [{"cidr": "10.1.2.3/32"}],
    [{"cidr": "0.0.0.0/0"}],
    [{"cidr": "172.16.0.0/12"}],
    [{"cidr": "2001:db8::/32"}],
    [{"wildcard": "10*3"}],
    [{"wildcard": "*"}],
    [{"wildcard": "a*"}],
    [{"wildcard": "*b"}],
    [{"wildcard": "ab"}],
    [{"wildcard": "a\\*b"}],
    [{"wildcard": "a*b*c"}],
    [{"wildcard": "ab*ba"}],
    ["a", {"prefix": "x"}],
    [{"exists": True}, "a"],
]
VALUES = st.sampled_from(
    [
        "",
        "a",
        "ab",
        "AB",
        "b",
        "x",
        "abc",
        "aba",
        "abba",
        "a*b",
        "1003",
        "10013",
        "103",
        "13",
        "203.0.113.5",
        "203.0.113.127",
        "203.0.113.128",
        "203.0.113.05",
        "203.0.113.1.1",
        "203.0.113.",
        "203.0.113.256",
        "203.0.113.\u0661",  # an Arabic-Indic digit one: a digit, but no address
        "10.1.2.3",
        "10.1.2.30",
        "010.1.2.3",
        "10.0.0.0",
        "172.31.255.255",
        "172.32.0.1",
        "2001:db8::1",
        0,
        1,
        1.0,
        2.5,
        -1,
        10**20,
        float("nan"),
        True,
        False,
        None,
    ]
)


def clause(leaf: list[Any]) -> FieldClause:
    (only,) = compile_pattern({"v": leaf}).node.clauses
    return only


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(LEAVES), st.lists(VALUES, max_size=3))
def test_specialised_checks_agree_with_the_reference(leaf: list[Any], values: list[Any]) -> None:
    """For every kind of clause and any values (absent included), the specialised check gives the reference's answer."""
    compiled = clause(leaf)
    assert clause_check(compiled)(values) is clause_holds(compiled, values)


def test_cidr_check_spot_values() -> None:
    """The IPv4 check compares whole octets as text and parses only the rest (spot checks, both answers)."""
    check = clause_check(clause([{"cidr": "203.0.113.0/25"}]))
    assert check(["203.0.113.127"]) is True
    assert check(["203.0.113.128"]) is False
    assert check(["203.0.113.05"]) is False  # leading zeros are no address
    assert check(["x", "203.0.113.0"]) is True
    host = clause_check(clause([{"cidr": "10.1.2.3/32"}]))
    assert host(["10.1.2.3"]) is True
    assert host(["10.1.2.30"]) is False


def test_wildcard_check_spot_values() -> None:
    """A one-star wildcard needs the head, the tail and room for both (they may not overlap)."""
    check = clause_check(clause([{"wildcard": "10*3"}]))
    assert check(["1003"]) is True
    assert check(["103"]) is True
    assert check(["13"]) is False
    assert check([1003]) is False
    overlapping = clause_check(clause([{"wildcard": "ab*ba"}]))
    assert overlapping(["aba"]) is False
    assert overlapping(["abba"]) is True
