"""The routing table: every target's rule, indexed so that matching costs grow with the event, not the table.

How an event is matched:

1. Each rule is expanded into AND-only conjunctions (its ``$or`` groups multiplied out, bounded when
   compiled). Each conjunction picks an *anchor*: the clause, among those only a present field can
   satisfy, that the fewest other rules share (exact values that many rules name, ``anything-but`` and
   ``exists`` make poor anchors). When the anchor is an exact-value clause and another hashable clause
   exists, that one becomes a *second anchor*, indexed under the first one's value: a two-level index,
   so that "tenant X and event type Y" finds only the rules naming both. Only anchors are indexed.
2. The values at the anchored paths are looked up directly (or, when very many paths are anchored, the
   event is walked once, visiting only the paths some rule names: ``events.collect_wanted``).
3. For each value, the path's index yields the conjunctions whose anchor the value satisfies: a hash
   lookup for exact values (typed: ``"1"``, ``1`` and ``true`` are distinct keys), for case-folded values
   and for each distinct prefix or suffix length; a short scan for numeric ranges and the rare operators
   (cidr, wildcard, regex, contains, anything-but) anchored on that path; and, under an exact value,
   the second-level indexes of the paths its rules' second anchors name.
4. Each candidate's remaining clauses are checked against the event, each path fetched once. Conjunctions
   with no clause that needs a present field (only ``exists: false``, or no clause at all) sit in a small
   set checked for every event.

The table is mutable while in use (``upsert``, ``remove``); it is not thread-safe: change and match it
from one thread (the router's event loop), as the router does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from cxone_eventbridge.exceptions import InvalidEventError
from cxone_eventbridge.matching.buckets import (
    Conjunction,
    PathIndex,
    Probe,
    bucket_of,
    drop_group_if_empty,
    group_under,
    register,
    typed_key,
    unregister,
)
from cxone_eventbridge.matching.events import (
    WANT_INNER,
    WANT_LEAF,
    PathReader,
    collect_wanted,
    path_reader,
    require_object,
)
from cxone_eventbridge.matching.ir import (
    AnythingBut,
    EqualsIgnoreCase,
    Exact,
    Exists,
    FieldClause,
    Numeric,
    Prefix,
    Suffix,
    expand,
)
from cxone_eventbridge.matching.rules import CompiledRule, RuleSource, compile_target_rule

# Estimated cost of anchoring on a test, beyond how many rules share its key: the scans cost a call per
# value, and anything-but or exists let nearly every event through to verification.
_RANGE_COST = 50
_SCAN_COST = 100
_UNSELECTIVE_COST = 100_000

# The most work matching one event may take, in units: each value that a test examines costs one unit
# and, for tests that scan strings (regex, wildcard, contains, ...), one more per _CHARS_PER_UNIT
# characters. Hash lookups of the index are free. Matching an event beyond it raises InvalidEventError
# (the router refuses that event with 422) instead of holding the event loop: a 275 KB event holding a
# 25,000-element array, against 1,000 targets with regex, wildcard and contains filters on it, took 66 s.
# 50,000 units take 50-100 ms here (1-2 us a unit); ordinary events cost tens to hundreds, and 1,000
# targets with a regex on one field can still match events holding 50 values there.
MAX_MATCH_WORK = 50_000
_CHARS_PER_UNIT = 256


def _exact_only(clause: FieldClause) -> bool:
    return clause.requires_presence and all(isinstance(test, Exact) for test in clause.tests)


def _hashable(clause: FieldClause) -> bool:
    """Whether every test of a clause lives in a hash bucket (so it can be a second anchor)."""
    return clause.requires_presence and all(
        bucket_of(test) is not None and not isinstance(test, Exists) for test in clause.tests
    )


_MAX_SECOND_LEVEL_ENTRIES = 64


def _stat_keys(clause: FieldClause) -> list[tuple[str, str, object]]:
    """The keys by which the table counts how many clauses share a test (the anchor's selectivity)."""
    keys: list[tuple[str, str, object]] = []
    for test in clause.tests:
        bucket = bucket_of(test)
        if bucket is None:
            keys.append((clause.path, type(test).__name__, None))
        else:
            kind, key = bucket
            # Numbers and literals get distinct key spaces, so 1 and True never share a count.
            keys.append((clause.path, kind, (type(key).__name__, key)))
    return keys


def _check_cost(clause: FieldClause) -> int:
    """How costly a clause is to verify, so that cheap ones (set lookups) are checked first."""
    cost = 0
    for test in clause.tests:
        if isinstance(test, Exact):
            continue
        if isinstance(test, Prefix | Suffix | Numeric | Exists):
            cost += 2
        elif isinstance(test, EqualsIgnoreCase | AnythingBut):
            cost += 4
        else:
            cost += 10  # cidr parses an address, wildcard and contains scan, regex runs RE2
    return cost


def _string_work(values: list[Any]) -> int:
    """The work of scanning ``values`` once: a unit per value and per _CHARS_PER_UNIT characters of strings."""
    work = len(values)
    for value in values:
        if type(value) is str and len(value) >= _CHARS_PER_UNIT:
            work += len(value) // _CHARS_PER_UNIT
    return work


class RoutingTable:
    """Target names by rule, indexed; ``match(event)`` returns the names of the targets that want it."""

    def __init__(
        self,
        targets: Iterable[RuleSource] = (),
        *,
        direct_lookup_paths: int = 32,
        max_match_work: int = MAX_MATCH_WORK,
    ) -> None:
        """Index ``targets``; up to ``direct_lookup_paths`` anchored paths are looked up one by one, beyond
        that an event is walked once (both give the same answers; tests run both). Matching one event may
        take ``max_match_work`` units of work (see ``MAX_MATCH_WORK``)."""
        self._direct_lookup_paths = direct_lookup_paths
        self._max_match_work = max_match_work
        self._rules: dict[str, CompiledRule] = {}
        self._rule_conjunctions: dict[str, list[Conjunction]] = {}
        self._always: dict[Conjunction, None] = {}  # an ordered set
        self._paths: dict[str, PathIndex] = {}
        self._stats: Counter[tuple[str, str, object]] = Counter()
        self._path_refs: Counter[str] = Counter()
        self._wanted: dict[str, int] = {}
        self._wanted_stale = False
        # Derived from the above by ``_refresh_plan`` when ``_plan`` is None (after a change): per anchored
        # path, (path, reader, probe); the conjunctions checked for every event; whether to walk events.
        self._plan: tuple[tuple[str, PathReader, Probe, int], ...] | None = None
        self._always_checked: tuple[Conjunction, ...] = ()
        self._walk = False
        rules = [compile_target_rule(target) for target in targets]
        # Count every rule's clauses first, so that anchors are chosen with the whole table in view.
        unique = {rule.name: rule for rule in rules}
        for rule in unique.values():
            self._count(rule, +1)
        for rule in unique.values():
            self._insert(rule)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, name: object) -> bool:
        return name in self._rules

    def names(self) -> list[str]:
        """The names of the targets in the table, sorted."""
        return sorted(self._rules)

    def upsert(self, target: RuleSource) -> None:
        """Add a target, or replace the one with the same name; InvalidPatternError if its rule is invalid."""
        self.upsert_rule(compile_target_rule(target))

    def upsert_rule(self, rule: CompiledRule) -> None:
        """Add or replace an already compiled rule."""
        self.remove(rule.name)
        self._count(rule, +1)
        self._insert(rule)

    def remove(self, name: str) -> bool:
        """Remove the target named ``name``; whether it was there."""
        rule = self._rules.pop(name, None)
        if rule is None:
            return False
        for conjunction in self._rule_conjunctions.pop(name):
            if conjunction.anchor is None:
                del self._always[conjunction]
            else:
                self._unindex(conjunction)
        self._count(rule, -1)
        self._plan = None
        return True

    def match(self, event: object) -> list[str]:
        """The names (sorted) of the targets whose rule ``event`` matches.

        InvalidEventError for a non-object, and for an event that would take more than the table's
        ``max_match_work`` to match (many or long values at fields that non-indexed tests read).
        """
        if type(event) is not dict:
            require_object(event)  # raises InvalidEventError
        root: dict[str, Any] = event  # type: ignore[assignment]
        plan = self._plan
        if plan is None:
            plan = self._refresh_plan()
        candidates: set[Conjunction] = set()
        cache: dict[str, list[Any]] = {}  # the values at each path read so far
        budget = self._max_match_work  # what is left of the work this event may take
        if not self._walk:
            # Few anchored paths: look each up directly; other paths are read when a candidate needs them.
            for path, reader, probe, scans in plan:
                found = cache[path] = reader(root)
                if found:
                    if scans:
                        budget -= scans * _string_work(found)
                        if budget < 0:
                            raise self._too_costly()
                    probe(found, candidates, cache, root)
        else:
            # Many anchored paths: one walk of the event, visiting only the paths some rule names.
            walked = collect_wanted(root, self._current_wanted())
            cache.update(walked)
            for path, collected in walked.items():
                anchored = self._paths.get(path)
                if anchored is not None:
                    if anchored.scans:
                        budget -= len(anchored.scans) * _string_work(collected)
                        if budget < 0:
                            raise self._too_costly()
                    anchored.probe(collected, candidates, cache, root)
        if self._always_checked:
            candidates.update(self._always_checked)
        if not candidates:
            return []
        # The hot loop: each candidate's remaining clauses (cheapest first), each path read once per event.
        matched: list[str] = []
        for conjunction in candidates:
            for path, reader, check, scans in conjunction.checks:
                values = cache.get(path)
                if values is None:
                    values = cache[path] = reader(root)
                budget -= _string_work(values) if scans else len(values)
                if budget < 0:
                    raise self._too_costly()
                if not check(values):
                    break
            else:
                matched.append(conjunction.name)
        if len(matched) > 1:
            # Several conjunctions of one rule ($or) may match: each name once, sorted.
            return sorted(set(matched))
        return matched

    def _too_costly(self) -> InvalidEventError:
        return InvalidEventError(
            f"matching this event would take more than {self._max_match_work} units of work (each value that "
            f"a non-indexed test such as regex, wildcard or contains examines, plus one per {_CHARS_PER_UNIT} "
            "characters it scans); send fewer or shorter values in the fields such filters read"
        )

    # -- maintenance -------------------------------------------------------------------------------

    def _refresh_plan(self) -> tuple[tuple[str, PathReader, Probe, int], ...]:
        self._walk = len(self._paths) > self._direct_lookup_paths
        self._always_checked = tuple(self._always)
        plan = self._plan = tuple(
            (path, index.reader, index.probe, len(index.scans)) for path, index in self._paths.items()
        )
        return plan

    def _count(self, rule: CompiledRule, delta: int) -> None:
        for conjunction in expand(rule.node):
            for clause in conjunction:
                for key in _stat_keys(clause):
                    self._stats[key] += delta
                    if self._stats[key] <= 0:
                        del self._stats[key]
                self._path_refs[clause.path] += delta
                if self._path_refs[clause.path] <= 0:
                    del self._path_refs[clause.path]
                    self._wanted_stale = True
                elif delta > 0 and clause.path not in self._wanted:
                    self._wanted_stale = True

    def _cost(self, clause: FieldClause) -> int:
        cost = 0
        for test, key in zip(clause.tests, _stat_keys(clause), strict=True):
            shared = self._stats[key]
            if isinstance(test, AnythingBut | Exists):
                cost += _UNSELECTIVE_COST + shared
            elif isinstance(test, Numeric) and key[1] != "numbers":
                cost += _RANGE_COST + shared
            elif bucket_of(test) is None:
                cost += _SCAN_COST + shared
            else:
                cost += shared
        return cost

    def _insert(self, rule: CompiledRule) -> None:
        self._rules[rule.name] = rule
        conjunctions: list[Conjunction] = []
        for clauses in expand(rule.node):
            anchorable = [clause for clause in clauses if clause.requires_presence]
            if not anchorable:
                conjunction = Conjunction(rule.name, tuple(sorted(clauses, key=_check_cost)), None)
                self._always[conjunction] = None
                conjunctions.append(conjunction)
                continue
            anchor = min(anchorable, key=self._cost)
            second = None
            exact = [clause for clause in anchorable if _exact_only(clause)]
            if exact:
                anchor = min(exact, key=self._cost)
                seconds = [
                    clause
                    for clause in anchorable
                    if clause is not anchor
                    and _hashable(clause)
                    and len(anchor.tests) * len(clause.tests) <= _MAX_SECOND_LEVEL_ENTRIES
                ]
                second = min(seconds, key=self._cost) if seconds else None
            others = [clause for clause in clauses if clause is not anchor and clause is not second]
            conjunction = Conjunction(rule.name, tuple(sorted(others, key=_check_cost)), anchor, second)
            self._index(conjunction)
            conjunctions.append(conjunction)
        self._rule_conjunctions[rule.name] = conjunctions
        self._plan = None

    def _index(self, conjunction: Conjunction) -> None:
        anchor, second = conjunction.anchor, conjunction.second
        assert anchor is not None
        index = self._paths.get(anchor.path)
        if index is None:
            index = self._paths[anchor.path] = PathIndex(path_reader(anchor.path))
        if second is None:
            register(index, anchor, conjunction)
            return
        for test in anchor.tests:
            assert isinstance(test, Exact)
            group = group_under(index, typed_key(test.value))
            sub = group.subs.get(second.path)
            if sub is None:
                sub = group.subs[second.path] = PathIndex(path_reader(second.path))
            register(sub, second, conjunction)
            group.refresh()
            index.size += 1

    def _unindex(self, conjunction: Conjunction) -> None:
        anchor, second = conjunction.anchor, conjunction.second
        assert anchor is not None
        index = self._paths[anchor.path]
        if second is None:
            unregister(index, anchor, conjunction)
        else:
            for test in anchor.tests:
                assert isinstance(test, Exact)
                key = typed_key(test.value)
                group = index.nested[key]
                sub = group.subs[second.path]
                unregister(sub, second, conjunction)
                if sub.size <= 0:
                    del group.subs[second.path]
                group.refresh()
                drop_group_if_empty(index, key)
                index.size -= 1
        if index.size <= 0:
            del self._paths[anchor.path]

    def _current_wanted(self) -> dict[str, int]:
        if self._wanted_stale:
            wanted: dict[str, int] = {}
            for path in self._path_refs:
                wanted[path] = wanted.get(path, 0) | WANT_LEAF
                # Every dotted prefix is a place to descend; an event key may also hold the dots itself.
                position = path.find(".")
                while position != -1:
                    prefix = path[:position]
                    wanted[prefix] = wanted.get(prefix, 0) | WANT_INNER
                    position = path.find(".", position + 1)
            self._wanted = wanted
            self._wanted_stale = False
        return self._wanted
