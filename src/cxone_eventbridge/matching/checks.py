"""Clause checks specialised for the routing table's verification loop.

``FieldClause.matches_values`` handles every mix of tests; most clauses in real rules hold one kind of
test (a list of exact strings, one numeric range, one prefix, one ``anything-but`` string), and for those a
closure with the test inlined saves a call per value and the dispatch over kinds. ``clause_check`` picks
one, or falls back to the general method: the answers are the same (property tests compare the table
with the reference evaluator, which uses neither).

The values given to a check are those ``events`` reads: only ``str``, ``int``, ``float``, ``bool`` and
``None`` (never subclasses), which is what lets a plain ``==`` or set lookup stand for a typed comparison
where noted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cxone_eventbridge.matching.ir import (
    AnythingBut,
    Cidr,
    EqualsIgnoreCase,
    Exact,
    Exists,
    FieldClause,
    Numeric,
    Prefix,
    Suffix,
    is_number,
    parse_ipv4,
)

ClauseCheck = Callable[[list[Any]], bool]


def clause_check(clause: FieldClause) -> ClauseCheck:
    """A function of the values at the clause's path (empty when absent) giving ``clause.matches_values``."""
    tests = clause.tests
    if clause.absent_ok or not tests:
        return clause.matches_values
    if any(isinstance(test, Exists) for test in tests):
        return bool  # any leaf value satisfies the clause
    if all(isinstance(test, Exact) for test in tests):
        return _exact_check(clause)
    if len(tests) == 1:
        test = tests[0]
        if isinstance(test, Numeric):
            return _numeric_check(test)
        if isinstance(test, Prefix | Suffix):
            return _affix_check(test)
        if isinstance(test, EqualsIgnoreCase):
            return _folded_check(test.text)
        if isinstance(test, AnythingBut):
            return _anything_but_check(test)
        if isinstance(test, Cidr) and test.network.version == 4:
            return _ipv4_check(test)
        return _one_test_check(test.matches)
    return clause.matches_values


def _exact_check(clause: FieldClause) -> ClauseCheck:
    values = [test.value for test in clause.tests if isinstance(test, Exact)]
    if all(type(value) is str for value in values):
        if len(values) == 1:
            (text,) = values

            def one_string(found: list[Any]) -> bool:
                # A str equals only a str, so == is type-strict here.
                for value in found:  # noqa: SIM110 - a loop avoids a generator per call on the hot path
                    if value == text:
                        return True
                return False

            return one_string
        strings = frozenset(values)

        def strings_check(found: list[Any]) -> bool:
            # Only str hashes equal to a str, so membership is type-strict here.
            for value in found:  # noqa: SIM110 - as above
                if value in strings:
                    return True
            return False

        return strings_check
    return clause.matches_values  # numbers (where true must not equal 1) and literals: the general method


def _numeric_check(test: Numeric) -> ClauseCheck:
    lower, upper = test.lower, test.upper
    lower_strict, upper_strict = not test.lower_inclusive, not test.upper_inclusive
    # NaN fails every comparison below, as it fails Numeric.matches.
    if upper is None and lower is not None:

        def at_least(found: list[Any]) -> bool:
            for value in found:
                kind = type(value)
                if (kind is int or kind is float) and (value > lower if lower_strict else value >= lower):
                    return True
            return False

        return at_least
    if lower is None and upper is not None:

        def at_most(found: list[Any]) -> bool:
            for value in found:
                kind = type(value)
                if (kind is int or kind is float) and (value < upper if upper_strict else value <= upper):
                    return True
            return False

        return at_most
    if lower is not None and upper is not None:

        def between(found: list[Any]) -> bool:
            for value in found:
                kind = type(value)
                if (
                    (kind is int or kind is float)
                    and (value > lower if lower_strict else value >= lower)
                    and (value < upper if upper_strict else value <= upper)
                ):
                    return True
            return False

        return between
    return _one_test_check(test.matches)


def _affix_check(test: Prefix | Suffix) -> ClauseCheck:
    text = test.text
    if test.ignore_case:
        return _one_test_check(test.matches)
    if isinstance(test, Prefix):

        def prefix(found: list[Any]) -> bool:
            for value in found:  # noqa: SIM110 - a loop avoids a generator per call on the hot path
                if type(value) is str and value.startswith(text):
                    return True
            return False

        return prefix

    def suffix(found: list[Any]) -> bool:
        for value in found:  # noqa: SIM110 - as above
            if type(value) is str and value.endswith(text):
                return True
        return False

    return suffix


def _folded_check(text: str) -> ClauseCheck:
    def folded(found: list[Any]) -> bool:
        for value in found:  # noqa: SIM110 - as above
            if type(value) is str and value.casefold() == text:
                return True
        return False

    return folded


def _anything_but_check(test: AnythingBut) -> ClauseCheck:
    excluded = test.excluded
    if not all(isinstance(t, Exact) and (type(t.value) is str or is_number(t.value)) for t in excluded):
        return _one_test_check(test.matches)
    strings = frozenset(t.value for t in excluded if isinstance(t, Exact) and type(t.value) is str)
    numbers = frozenset(t.value for t in excluded if isinstance(t, Exact) and is_number(t.value))

    def anything_but(found: list[Any]) -> bool:
        # A value passes unless it is an excluded string or an excluded number (true is not 1).
        for value in found:
            kind = type(value)
            if kind is str:
                if value not in strings:
                    return True
            elif kind is int or kind is float:
                if value not in numbers:
                    return True
            else:
                return True
        return False

    return anything_but


def _ipv4_check(test: Cidr) -> ClauseCheck:
    base, mask = int(test.network.network_address), int(test.network.netmask)

    def ipv4(found: list[Any]) -> bool:
        for value in found:
            # Longer strings are no address (as in Cidr.matches): bounds the parse.
            if type(value) is str and len(value) <= 45:
                address = parse_ipv4(value)
                if address is not None and address & mask == base:
                    return True
        return False

    return ipv4


def _one_test_check(matches: Callable[[object], bool]) -> ClauseCheck:
    def one_test(found: list[Any]) -> bool:
        for value in found:  # noqa: SIM110 - a loop avoids a generator per call on the hot path
            if matches(value):
                return True
        return False

    return one_test
