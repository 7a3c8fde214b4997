"""The anchors indexed on one event path: hash buckets by kind, short scans, and second-level indexes.

``PathIndex.probe`` is the routing table's inner loop: per value, one typed hash lookup for exact values,
one for the case-folded value, one per distinct prefix or suffix length, a scan of the few tests that no
hash can answer (numeric ranges, cidr, wildcard, contains, regex, anything-but) and, under an exact
value, the second-level indexes of the paths that its conjunctions' second anchors name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cxone_eventbridge.matching.events import PathReader
from cxone_eventbridge.matching.ir import (
    EqualsIgnoreCase,
    Exact,
    Exists,
    FieldClause,
    Numeric,
    Prefix,
    Suffix,
    ValueTest,
    is_number,
)


def _absent(event: dict[str, Any]) -> list[Any]:
    """The reader of an index not bound to a path (never called: the table binds every index it makes)."""
    return []


@dataclass(slots=True)
class PathIndex:
    """The anchors on one path, by the kind of lookup that finds them."""

    strings: dict[str, set[int]] = field(default_factory=dict)
    numbers: dict[int | float, set[int]] = field(default_factory=dict)
    literals: dict[object, set[int]] = field(default_factory=dict)  # keyed by True, False and None only
    folded: dict[str, set[int]] = field(default_factory=dict)
    prefixes: dict[str, set[int]] = field(default_factory=dict)
    prefix_lengths: Counter[int] = field(default_factory=Counter)
    folded_prefixes: dict[str, set[int]] = field(default_factory=dict)
    folded_prefix_lengths: Counter[int] = field(default_factory=Counter)
    suffixes: dict[str, set[int]] = field(default_factory=dict)
    suffix_lengths: Counter[int] = field(default_factory=Counter)
    folded_suffixes: dict[str, set[int]] = field(default_factory=dict)
    folded_suffix_lengths: Counter[int] = field(default_factory=Counter)
    present: set[int] = field(default_factory=set)
    scans: list[tuple[ValueTest, int]] = field(default_factory=list)
    # Second-level indexes under an exact value (keyed by ``_typed``): path -> index of second anchors.
    nested: dict[object, dict[str, PathIndex]] = field(default_factory=dict)
    # Derived, rebuilt by ``refresh`` after every change: sorted lengths and whether folding is needed.
    p_lengths: tuple[int, ...] = ()
    fp_lengths: tuple[int, ...] = ()
    s_lengths: tuple[int, ...] = ()
    fs_lengths: tuple[int, ...] = ()
    needs_fold: bool = False
    strings_only: bool = False  # only exact strings: probed by a tight loop (most second anchors)
    size: int = 0
    reader: PathReader = _absent

    def refresh(self) -> None:
        self.p_lengths = tuple(sorted(self.prefix_lengths))
        self.fp_lengths = tuple(sorted(self.folded_prefix_lengths))
        self.s_lengths = tuple(sorted(self.suffix_lengths))
        self.fs_lengths = tuple(sorted(self.folded_suffix_lengths))
        self.needs_fold = bool(self.folded or self.folded_prefixes or self.folded_suffixes)
        self.strings_only = bool(self.strings) and not (
            self.numbers
            or self.literals
            or self.needs_fold
            or self.prefixes
            or self.suffixes
            or self.present
            or self.scans
            or self.nested
        )

    def probe(self, values: list[Any], out: set[int], cache: dict[str, list[Any]], root: dict[str, Any]) -> None:
        """Add to ``out`` the conjunctions whose anchors on this path hold.

        Second-level indexes read their own paths from ``root``, through ``cache`` (values by path, filled in
        as paths are read).
        """
        if self.present:
            out.update(self.present)
        strings, numbers, scans, nested = self.strings, self.numbers, self.scans, self.nested
        for value in values:
            kind = type(value)
            if kind is str:
                if strings:
                    hit = strings.get(value)
                    if hit:
                        out.update(hit)
                if nested:
                    subs = nested.get(value)
                    if subs:
                        _probe_subs(subs, out, cache, root)
                size = len(value)
                for length in self.p_lengths:
                    if length > size:
                        break
                    hit = self.prefixes.get(value[:length])
                    if hit:
                        out.update(hit)
                for length in self.s_lengths:
                    if length > size:
                        break
                    hit = self.suffixes.get(value[size - length :])
                    if hit:
                        out.update(hit)
                if self.needs_fold:
                    self._probe_folded(value.casefold(), out)
            elif kind is int or kind is float:
                if numbers:
                    hit = numbers.get(value)
                    if hit:
                        out.update(hit)
                if nested:
                    self._probe_nested(("number", value), out, cache, root)
            elif kind is bool or value is None:
                if self.literals:
                    hit = self.literals.get(value)
                    if hit:
                        out.update(hit)
                if nested:
                    self._probe_nested(("literal", value), out, cache, root)
            for test, conjunction in scans:
                if test.matches(value):
                    out.add(conjunction)

    def _probe_nested(self, key: object, out: set[int], cache: dict[str, list[Any]], root: dict[str, Any]) -> None:
        subs = self.nested.get(key)
        if subs:
            _probe_subs(subs, out, cache, root)

    def _probe_folded(self, folded: str, out: set[int]) -> None:
        hit = self.folded.get(folded)
        if hit:
            out.update(hit)
        size = len(folded)
        for length in self.fp_lengths:
            if length > size:
                break
            hit = self.folded_prefixes.get(folded[:length])
            if hit:
                out.update(hit)
        for length in self.fs_lengths:
            if length > size:
                break
            hit = self.folded_suffixes.get(folded[size - length :])
            if hit:
                out.update(hit)


def _probe_subs(subs: dict[str, PathIndex], out: set[int], cache: dict[str, list[Any]], root: dict[str, Any]) -> None:
    """Probe the second-level indexes under one exact value, each with its own path's values."""
    for path, sub in subs.items():
        found = cache.get(path)
        if found is None:
            found = cache[path] = sub.reader(root)
        if not found:
            continue
        if sub.strings_only:
            strings = sub.strings
            for value in found:
                if type(value) is str:
                    hit = strings.get(value)
                    if hit:
                        out.update(hit)
        else:
            sub.probe(found, out, cache, root)


def bucket_of(test: ValueTest) -> tuple[str, object] | None:
    """The hash bucket an anchor test lives in (kind, key), or None when it is scanned."""
    if isinstance(test, Exact):
        value = test.value
        if type(value) is str:
            return ("strings", value)
        if is_number(value):
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
    if is_number(value):
        return ("number", value)
    return ("literal", value)


_LENGTHS = {
    "prefixes": "prefix_lengths",
    "folded_prefixes": "folded_prefix_lengths",
    "suffixes": "suffix_lengths",
    "folded_suffixes": "folded_suffix_lengths",
}


def register(index: PathIndex, clause: FieldClause, conjunction_id: int) -> None:
    """Index ``clause`` (an anchor) on ``index`` for ``conjunction_id``: one entry per test."""
    for test in clause.tests:
        bucket = bucket_of(test)
        if bucket is None:
            index.scans.append((test, conjunction_id))
        elif bucket[0] == "present":
            index.present.add(conjunction_id)
        else:
            kind, key = bucket
            table: dict[Any, set[int]] = getattr(index, kind)
            table.setdefault(key, set()).add(conjunction_id)
            if kind in _LENGTHS:
                assert isinstance(key, str)
                getattr(index, _LENGTHS[kind])[len(key)] += 1
        index.size += 1
    index.refresh()


def unregister(index: PathIndex, clause: FieldClause, conjunction_id: int) -> None:
    """Undo ``register``: drop the entries, and the buckets and lengths that become empty."""
    for test in clause.tests:
        bucket = bucket_of(test)
        if bucket is None:
            index.scans = [(t, c) for t, c in index.scans if c != conjunction_id]
        elif bucket[0] == "present":
            index.present.discard(conjunction_id)
        else:
            kind, key = bucket
            table: dict[Any, set[int]] = getattr(index, kind)
            members = table.get(key)
            if members is not None:
                members.discard(conjunction_id)
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
