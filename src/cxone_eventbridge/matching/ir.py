"""The compiled form shared by event patterns and filters: value tests, field clauses and AND/OR nodes.

A rule is a ``Node``: every ``FieldClause`` must hold and, for each ``$or`` group, at least one of its
alternatives. A clause holds when some leaf value at its path passes one of its tests, or, when
``absent_ok`` is set, when the path has no leaf value at all (``exists: false``).

Tests are type-strict like EventBridge's: strings match only strings, numbers only numbers (compared
numerically, so ``300`` matches ``300.0``), ``true`` never matches ``1`` and ``null`` only ``null``.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import re2

from cxone_eventbridge.wire import is_json_number

Scalar = str | int | float | bool | None


class ValueTest(Protocol):
    """One test of a single leaf value."""

    def matches(self, value: object) -> bool: ...


@dataclass(frozen=True, slots=True)
class Exact:
    """Equal to a JSON scalar, type-strict."""

    value: Scalar

    def matches(self, value: object) -> bool:
        expected = self.value
        if expected is None:
            return value is None
        kind = type(expected)
        if kind is bool:
            return type(value) is bool and value is expected
        if kind is str:
            return type(value) is str and value == expected
        return is_json_number(value) and value == expected


@dataclass(frozen=True, slots=True)
class Prefix:
    """A string that starts with ``text`` (case-folded on both sides when ``ignore_case``)."""

    text: str
    ignore_case: bool = False

    def matches(self, value: object) -> bool:
        if type(value) is not str:
            return False
        if self.ignore_case:
            return value.casefold().startswith(self.text)
        return value.startswith(self.text)


@dataclass(frozen=True, slots=True)
class Suffix:
    """A string that ends with ``text`` (case-folded on both sides when ``ignore_case``)."""

    text: str
    ignore_case: bool = False

    def matches(self, value: object) -> bool:
        if type(value) is not str:
            return False
        if self.ignore_case:
            return value.casefold().endswith(self.text)
        return value.endswith(self.text)


@dataclass(frozen=True, slots=True)
class EqualsIgnoreCase:
    """A string equal to ``text`` once both are case-folded (``text`` is stored folded)."""

    text: str

    def matches(self, value: object) -> bool:
        return type(value) is str and value.casefold() == self.text


@dataclass(frozen=True, slots=True)
class Numeric:
    """A number inside a range; a missing bound is unbounded."""

    lower: float | int | None = None
    lower_inclusive: bool = False
    upper: float | int | None = None
    upper_inclusive: bool = False

    def matches(self, value: object) -> bool:
        if not is_json_number(value):
            return False
        assert isinstance(value, int | float)
        if type(value) is float and math.isnan(value):
            return False  # NaN (which json.loads accepts) is in no range
        lower, upper = self.lower, self.upper
        if lower is not None and (value < lower or (value == lower and not self.lower_inclusive)):
            return False
        return not (upper is not None and (value > upper or (value == upper and not self.upper_inclusive)))


@dataclass(frozen=True, slots=True)
class Exists:
    """Any leaf value at all (``exists: true``)."""

    def matches(self, value: object) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Cidr:
    """A string holding an IP address inside ``network`` (IPv4 or IPv6)."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    _base: int = field(init=False, repr=False, compare=False)
    _mask: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_base", int(self.network.network_address))
        object.__setattr__(self, "_mask", int(self.network.netmask))

    def matches(self, value: object) -> bool:
        # An IP address is at most 45 characters; refusing longer strings early bounds the parse.
        if type(value) is not str or len(value) > 45:
            return False
        if self.network.version == 4:
            # Dotted quads parsed by hand: ipaddress.ip_address costs several microseconds per call.
            address = parse_ipv4(value)
            return address is not None and address & self._mask == self._base
        try:
            parsed = ipaddress.ip_address(value)
        except ValueError:
            return False
        return parsed.version == 6 and int(parsed) & self._mask == self._base


def parse_ipv4(text: str) -> int | None:
    """A dotted-quad IPv4 address as an integer, with ipaddress's rules (no leading zeros), or None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    address = 0
    for part in parts:
        if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()) or (part[0] == "0" and len(part) > 1):
            return None
        octet = int(part)
        if octet > 255:
            return None
        address = address << 8 | octet
    return address


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A string matching a wildcard: literal runs with ``*`` (any run of characters) between them.

    Matched greedily left to right with ``str.find``, which is correct for ``*``-only globs and takes
    linear time; no regular expression, hence no backtracking, is involved.
    """

    text: str
    pieces: tuple[str | None, ...]  # literal runs, and None for each ``*`` (never two in a row)
    _starred: bool = field(init=False, repr=False, compare=False)
    _head: str = field(init=False, repr=False, compare=False)
    _middle: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _tail: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pieces = list(self.pieces)
        starred = None in pieces
        head = pieces.pop(0) if pieces and pieces[0] is not None else ""
        tail = pieces.pop() if starred and pieces and pieces[-1] is not None else ""
        object.__setattr__(self, "_starred", starred)
        object.__setattr__(self, "_head", head or "")
        object.__setattr__(self, "_middle", tuple(piece for piece in pieces if piece is not None))
        object.__setattr__(self, "_tail", tail or "")

    def matches(self, value: object) -> bool:
        if type(value) is not str:
            return False
        head = self._head
        if not self._starred:
            return value == head
        if not value.startswith(head):
            return False
        position = len(head)
        for piece in self._middle:
            found = value.find(piece, position)
            if found < 0:
                return False
            position = found + len(piece)
        tail = self._tail
        return len(value) - len(tail) >= position and value.endswith(tail)


@dataclass(frozen=True, slots=True)
class Contains:
    """A string containing ``text`` (the tutorial's ``contains`` filter)."""

    text: str

    def matches(self, value: object) -> bool:
        return type(value) is str and self.text in value


@dataclass(frozen=True, slots=True)
class Regex:
    """A string in which the RE2 expression finds a match (the tutorial's ``regex`` filter)."""

    text: str
    regex: Any = field(compare=False, hash=False)
    _search: Callable[[str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_search", re2_searcher(self.regex))

    def matches(self, value: object) -> bool:
        return type(value) is str and self._search(value)


def re2_searcher(compiled: Any) -> Callable[[str], bool]:
    """A yes/no search with a compiled RE2 expression.

    google-re2's ``search`` builds a match object and maps byte offsets back to characters (about 10 us
    a call here); a yes/no answer needs neither, so the underlying ``RE2.Match`` is called directly when
    the installed version exposes it, and ``search`` otherwise.
    """
    regexp = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
    if regexp is None or anchor is None or not hasattr(regexp, "Match"):
        return lambda text: compiled.search(text) is not None
    unanchored = anchor.UNANCHORED
    match = regexp.Match

    def search(text: str) -> bool:
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:
            return compiled.search(text) is not None  # lone surrogates: let the library decide
        return bool(match(unanchored, encoded, 0, len(encoded))[0] != (-1, -1))

    return search


@dataclass(frozen=True, slots=True)
class AnythingBut:
    """A present value that passes none of ``excluded`` (``anything-but``, ``not_equals``)."""

    excluded: tuple[ValueTest, ...]
    # Excluded exact strings and numbers as sets (one lookup), the other tests called one by one.
    _strings: frozenset[str] = field(init=False, repr=False, compare=False)
    _numbers: frozenset[int | float] = field(init=False, repr=False, compare=False)
    _others: tuple[ValueTest, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        strings = {t.value for t in self.excluded if isinstance(t, Exact) and type(t.value) is str}
        numbers = {t.value for t in self.excluded if isinstance(t, Exact) and is_json_number(t.value)}
        others = tuple(
            t for t in self.excluded if not (isinstance(t, Exact) and (type(t.value) is str or is_json_number(t.value)))
        )
        object.__setattr__(self, "_strings", frozenset(strings))
        object.__setattr__(self, "_numbers", frozenset(numbers))
        object.__setattr__(self, "_others", others)

    def matches(self, value: object) -> bool:
        kind = type(value)
        if kind is str:
            if value in self._strings:
                return False
        elif (kind is int or kind is float) and value in self._numbers:
            return False
        for test in self._others:  # noqa: SIM110 - a loop avoids a generator per call on the hot path
            if test.matches(value):
                return False
        return True


@dataclass(frozen=True, slots=True)
class FieldClause:
    """The condition on one field path: some leaf value passes some test, or the path is absent."""

    path: str
    tests: tuple[ValueTest, ...]
    absent_ok: bool = False
    # Exact tests split by type so that a check is one set lookup; the rest are called one by one.
    _strings: frozenset[str] = field(init=False, repr=False, compare=False)
    _numbers: frozenset[int | float] = field(init=False, repr=False, compare=False)
    _literals: tuple[Scalar, ...] = field(init=False, repr=False, compare=False)
    _others: tuple[ValueTest, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        strings: set[str] = set()
        numbers: set[int | float] = set()
        literals: list[Scalar] = []
        others: list[ValueTest] = []
        for test in self.tests:
            if isinstance(test, Exact):
                value = test.value
                if type(value) is str:
                    strings.add(value)
                elif is_json_number(value):
                    assert isinstance(value, int | float)
                    numbers.add(value)
                else:
                    literals.append(value)
            else:
                others.append(test)
        object.__setattr__(self, "_strings", frozenset(strings))
        object.__setattr__(self, "_numbers", frozenset(numbers))
        object.__setattr__(self, "_literals", tuple(literals))
        object.__setattr__(self, "_others", tuple(others))

    @property
    def requires_presence(self) -> bool:
        """Whether only a present field can satisfy this clause (so it can anchor an index lookup)."""
        return not self.absent_ok

    def matches_values(self, values: Sequence[object] | None) -> bool:
        """Whether the leaf values found at ``path`` (None or empty when absent) satisfy the clause."""
        if not values:
            return self.absent_ok
        strings, numbers, literals, others = self._strings, self._numbers, self._literals, self._others
        for value in values:
            kind = type(value)
            if kind is str:
                if value in strings:
                    return True
            elif kind is int or kind is float:
                if value in numbers:
                    return True
            elif literals and any(value is literal for literal in literals):
                return True  # True, False and None are singletons
            for test in others:
                if test.matches(value):
                    return True
        return False


@dataclass(frozen=True, slots=True)
class Node:
    """All ``clauses`` hold and every ``$or`` group has an alternative that holds."""

    clauses: tuple[FieldClause, ...] = ()
    any_of: tuple[tuple[Node, ...], ...] = ()


def and_nodes(*nodes: Node) -> Node:
    """The conjunction of several nodes, flattened into one."""
    clauses: list[FieldClause] = []
    groups: list[tuple[Node, ...]] = []
    for node in nodes:
        clauses.extend(node.clauses)
        groups.extend(node.any_of)
    return Node(tuple(clauses), tuple(groups))


def count_conjunctions(node: Node) -> int:
    """How many AND-only rules ``node`` expands to (the product of its ``$or`` groups' sizes)."""
    total = 1
    for group in node.any_of:
        total *= sum(count_conjunctions(alternative) for alternative in group)
    return total


def expand(node: Node) -> list[tuple[FieldClause, ...]]:
    """The AND-only rules whose OR is ``node`` (disjunctive normal form); bounded by the compiler's limit."""
    conjunctions: list[tuple[FieldClause, ...]] = [node.clauses]
    for group in node.any_of:
        options = [conj for alternative in group for conj in expand(alternative)]
        conjunctions = [base + option for base in conjunctions for option in options]
    return conjunctions
