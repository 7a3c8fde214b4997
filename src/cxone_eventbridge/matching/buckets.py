"""The anchors indexed on one event path: hash buckets by kind, short scans, and second-level indexes.

``PathIndex.probe`` is the routing table's inner loop: per value, one typed hash lookup for exact values,
one for the case-folded value, one per distinct prefix or suffix length, a scan of the few tests that no
hash can answer (numeric ranges, cidr, wildcard, contains, regex, anything-but) and, under an exact
value, the second-level indexes of the paths that its conjunctions' second anchors name.

``probe`` is not a method but a function that ``refresh`` rebuilds after every change, generated for the
kinds of buckets the index holds (``probes.probe_factory``): most indexes hold exact values only (a
tenant, an event type), and their probe is then one or two dictionary lookups per value, with no
attribute lookups, no tests of empty buckets and no loops over lengths.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cxone_eventbridge.matching.checks import ClauseCheck, clause_check
from cxone_eventbridge.matching.events import PathReader, path_reader
from cxone_eventbridge.matching.ir import (
    EqualsIgnoreCase,
    Exact,
    Exists,
    FieldClause,
    Numeric,
    Prefix,
    Suffix,
    ValueTest,
)
from cxone_eventbridge.matching.probes import MAX_UNROLLED_INDEXES, Shape, group_factory, probe_factory
from cxone_eventbridge.wire import is_json_number

Cache = dict[str, list[Any]]
Probe = Callable[[list[Any], "set[Conjunction]", Cache, dict[str, Any]], None]


@dataclass(slots=True, eq=False)
class Conjunction:
    """One AND-only rule of a target, as indexed: found through its anchors, then its other clauses checked.

    Buckets hold conjunctions themselves (hashed by identity), so that a candidate needs no lookup.
    """

    name: str
    others: tuple[FieldClause, ...]  # the clauses to verify once the anchors hold, cheapest first
    anchor: FieldClause | None
    second: FieldClause | None = None  # indexed under the anchor's exact value
    # Per clause to verify: its path, the path's reader, the check, and whether the check scans strings
    # (its cost grows with their length, which the routing table's work bound then counts).
    checks: tuple[tuple[str, PathReader, ClauseCheck, bool], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.checks = tuple((c.path, path_reader(c.path), clause_check(c), scans_strings(c)) for c in self.others)


def scans_strings(clause: FieldClause) -> bool:
    """Whether checking ``clause`` may read whole strings (regex, wildcard, contains, cidr, anything-but...)."""
    return any(bucket_of(test) is None and not isinstance(test, Numeric) for test in clause.tests)


def _no_probe(values: list[Any], out: set[Conjunction], cache: Cache, root: dict[str, Any]) -> None:
    """The probe of an index before its first ``refresh`` (never called: ``register`` refreshes)."""


def _no_group_probe(out: set[Conjunction], cache: Cache, root: dict[str, Any]) -> None:
    """The probe of an empty group (before its first ``refresh``)."""


@dataclass(slots=True, eq=False)
class Group:
    """The second-level indexes under one exact value of an anchor path, by the path they read."""

    subs: dict[str, PathIndex] = field(default_factory=dict)
    # Rebuilt by ``refresh``: reads each index's path (once per event, through the cache) and probes it.
    probe: Callable[[set[Conjunction], Cache, dict[str, Any]], None] = _no_group_probe

    def refresh(self) -> None:
        """Rebuild ``probe`` for the indexes now in the group (after every change)."""
        subs = tuple(self.subs.items())
        if len(subs) > MAX_UNROLLED_INDEXES:
            entries = tuple((path, sub.reader, sub.probe) for path, sub in subs)

            def probe_loop(out: set[Conjunction], cache: Cache, root: dict[str, Any]) -> None:
                for path, reader, probe in entries:
                    found = cache.get(path)
                    if found is None:
                        found = cache[path] = reader(root)
                    if found:
                        probe(found, out, cache, root)

            self.probe = probe_loop
            return
        factory = group_factory(tuple(sub.shape() for _, sub in subs))
        self.probe = factory(*(item for path, sub in subs for item in (path, sub.reader, *sub.buckets())))


@dataclass(slots=True, eq=False)
class PathIndex:
    """The anchors on one path, by the kind of lookup that finds them."""

    reader: PathReader
    strings: dict[str, set[Conjunction]] = field(default_factory=dict)
    numbers: dict[int | float, set[Conjunction]] = field(default_factory=dict)
    literals: dict[object, set[Conjunction]] = field(default_factory=dict)  # keyed by True, False and None only
    folded: dict[str, set[Conjunction]] = field(default_factory=dict)
    prefixes: dict[str, set[Conjunction]] = field(default_factory=dict)
    prefix_lengths: Counter[int] = field(default_factory=Counter)
    folded_prefixes: dict[str, set[Conjunction]] = field(default_factory=dict)
    folded_prefix_lengths: Counter[int] = field(default_factory=Counter)
    suffixes: dict[str, set[Conjunction]] = field(default_factory=dict)
    suffix_lengths: Counter[int] = field(default_factory=Counter)
    folded_suffixes: dict[str, set[Conjunction]] = field(default_factory=dict)
    folded_suffix_lengths: Counter[int] = field(default_factory=Counter)
    present: set[Conjunction] = field(default_factory=set)
    scans: list[tuple[ValueTest, Conjunction]] = field(default_factory=list)
    # Second-level indexes under an exact value (keyed by ``typed_key``).
    nested: dict[object, Group] = field(default_factory=dict)
    typed_groups: int = 0  # how many keys of ``nested`` are numbers or literals (not strings)
    size: int = 0
    probe: Probe = _no_probe  # rebuilt by ``refresh``

    def shape(self) -> Shape:
        """What the code of this index's probe depends on."""
        return Shape(
            strings=bool(self.strings),
            numbers=bool(self.numbers),
            literals=bool(self.literals),
            string_groups=len(self.nested) > self.typed_groups,
            typed_groups=self.typed_groups > 0,
            p_lengths=tuple(sorted(self.prefix_lengths)),
            s_lengths=tuple(sorted(self.suffix_lengths)),
            folded=bool(self.folded),
            fp_lengths=tuple(sorted(self.folded_prefix_lengths)),
            fs_lengths=tuple(sorted(self.folded_suffix_lengths)),
            present=bool(self.present),
            scans=bool(self.scans),
        )

    def buckets(self) -> tuple[Any, ...]:
        """The buckets, in the order generated probes take them (``probes.BUCKETS``)."""
        return (
            self.strings,
            self.numbers,
            self.literals,
            self.nested,
            self.prefixes,
            self.suffixes,
            self.folded,
            self.folded_prefixes,
            self.folded_suffixes,
            self.present,
            self.scans,
            tuple(sorted(self.prefix_lengths)),
            tuple(sorted(self.suffix_lengths)),
            tuple(sorted(self.folded_prefix_lengths)),
            tuple(sorted(self.folded_suffix_lengths)),
        )

    def refresh(self) -> None:
        """Rebuild ``probe`` for the buckets now in use (after every change)."""
        self.probe = probe_factory(self.shape())(*self.buckets())


def group_under(index: PathIndex, key: object) -> Group:
    """The second-level group under exact value ``key`` (a ``typed_key``), made if need be."""
    group = index.nested.get(key)
    if group is None:
        group = index.nested[key] = Group()
        if type(key) is not str:
            index.typed_groups += 1
        index.refresh()
    return group


def drop_group_if_empty(index: PathIndex, key: object) -> None:
    """Remove the group under ``key`` once its last second-level index is gone."""
    group = index.nested[key]
    if not group.subs:
        del index.nested[key]
        if type(key) is not str:
            index.typed_groups -= 1
        index.refresh()


def bucket_of(test: ValueTest) -> tuple[str, object] | None:
    """The hash bucket an anchor test lives in (kind, key), or None when it is scanned."""
    if isinstance(test, Exact):
        value = test.value
        if type(value) is str:
            return ("strings", value)
        if is_json_number(value):
            return ("numbers", value)
        return ("literals", value)
    if isinstance(test, Numeric) and test.lower is not None and test.lower == test.upper:
        if test.lower_inclusive and test.upper_inclusive:
            return ("numbers", test.lower)  # "= x"
        return None
    if isinstance(test, EqualsIgnoreCase):
        return ("folded", test.text)
    if isinstance(test, Prefix):
        return ("folded_prefixes" if test.ignore_case else "prefixes", test.text)
    if isinstance(test, Suffix):
        return ("folded_suffixes" if test.ignore_case else "suffixes", test.text)
    if isinstance(test, Exists):
        return ("present", None)
    return None


def typed_key(value: object) -> object:
    """A key under which an exact value is distinct from values of other JSON types (1, 1.0 vs true)."""
    if type(value) is str:
        return value
    if is_json_number(value):
        return ("number", value)
    return ("literal", value)


_LENGTHS = {
    "prefixes": "prefix_lengths",
    "folded_prefixes": "folded_prefix_lengths",
    "suffixes": "suffix_lengths",
    "folded_suffixes": "folded_suffix_lengths",
}


def register(index: PathIndex, clause: FieldClause, conjunction: Conjunction) -> None:
    """Index ``clause`` (an anchor) on ``index`` for ``conjunction``: one entry per test."""
    for test in clause.tests:
        bucket = bucket_of(test)
        if bucket is None:
            index.scans.append((test, conjunction))
        elif bucket[0] == "present":
            index.present.add(conjunction)
        else:
            kind, key = bucket
            table: dict[Any, set[Conjunction]] = getattr(index, kind)
            table.setdefault(key, set()).add(conjunction)
            if kind in _LENGTHS:
                assert isinstance(key, str)
                getattr(index, _LENGTHS[kind])[len(key)] += 1
        index.size += 1
    index.refresh()


def unregister(index: PathIndex, clause: FieldClause, conjunction: Conjunction) -> None:
    """Undo ``register``: drop the entries, and the buckets and lengths that become empty."""
    for test in clause.tests:
        bucket = bucket_of(test)
        if bucket is None:
            index.scans[:] = [(t, c) for t, c in index.scans if c is not conjunction]
        elif bucket[0] == "present":
            index.present.discard(conjunction)
        else:
            kind, key = bucket
            table: dict[Any, set[Conjunction]] = getattr(index, kind)
            members = table.get(key)
            if members is not None:
                members.discard(conjunction)
                if not members:
                    del table[key]
            if kind in _LENGTHS:
                assert isinstance(key, str)
                lengths: Counter[int] = getattr(index, _LENGTHS[kind])
                lengths[len(key)] -= 1
                if lengths[len(key)] <= 0:
                    del lengths[len(key)]
        index.size -= 1
    index.refresh()
