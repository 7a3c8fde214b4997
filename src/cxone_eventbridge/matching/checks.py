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
    Wildcard,
)
from cxone_eventbridge.wire import is_json_number

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
        if isinstance(test, Wildcard):
            return _wildcard_check(test)
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
    if not all(isinstance(t, Exact) and (type(t.value) is str or is_json_number(t.value)) for t in excluded):
        return _one_test_check(test.matches)
    strings = frozenset(t.value for t in excluded if isinstance(t, Exact) and type(t.value) is str)
    numbers = frozenset(t.value for t in excluded if isinstance(t, Exact) and is_json_number(t.value))

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
    """A CIDR block's whole octets compared as text, only the rest parsed.

    An IPv4 address has one spelling (no leading zeros, as ``parse_ipv4`` requires), so an address in
    ``203.0.113.0/25`` starts with ``203.0.113.``: a string that does not is no such address, and for one
    that does only the last octet is left to parse and test against the mask.
    """
    network = test.network
    fixed = network.prefixlen // 8
    octets = str(network.network_address).split(".")
    if fixed == 4:
        address = str(network.network_address)
        return lambda found: address in found  # a /32: one spelling; only a str equals a str
    head = ".".join(octets[:fixed]) + "." if fixed else ""
    start, rest = len(head), 4 - fixed
    bits = 8 * rest
    mask = int(network.netmask) & ((1 << bits) - 1)
    base = int(network.network_address) & ((1 << bits) - 1)

    def ipv4(found: list[Any]) -> bool:
        for value in found:
            # Longer strings are no address (as in Cidr.matches): bounds the parse.
            if type(value) is str and len(value) <= 45 and value.startswith(head):
                parts = value[start:].split(".")
                if len(parts) != rest:
                    continue
                tail = 0
                for part in parts:
                    if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()) or (
                        part[0] == "0" and len(part) > 1
                    ):
                        break
                    octet = int(part)
                    if octet > 255:
                        break
                    tail = tail << 8 | octet
                else:
                    if tail & mask == base:
                        return True
        return False

    return ipv4


def _wildcard_check(test: Wildcard) -> ClauseCheck:
    """A wildcard with at most one star as plain string tests; others by ``Wildcard.matches``."""
    pieces = test.pieces
    if None not in pieces:
        text = "".join(piece for piece in pieces if piece is not None)
        return lambda found: text in found  # no star: equality, and only a str equals a str
    if len(pieces) > 3 or sum(piece is None for piece in pieces) != 1:
        return _one_test_check(test.matches)
    star = pieces.index(None)
    head = "".join(piece for piece in pieces[:star] if piece is not None)
    tail = "".join(piece for piece in pieces[star + 1 :] if piece is not None)
    least = len(head) + len(tail)

    def one_star(found: list[Any]) -> bool:
        for value in found:
            if type(value) is str and len(value) >= least and value.startswith(head) and value.endswith(tail):
                return True
        return False

    return one_star


def _one_test_check(matches: Callable[[object], bool]) -> ClauseCheck:
    def one_test(found: list[Any]) -> bool:
        for value in found:  # noqa: SIM110 - a loop avoids a generator per call on the hot path
            if matches(value):
                return True
        return False

    return one_test
