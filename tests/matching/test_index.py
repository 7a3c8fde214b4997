"""The routing table: live changes, and agreement with the reference evaluator on random rules and events."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cxone_eventbridge.matching import (
    InvalidPatternError,
    RoutingTable,
    compile_pattern,
    compile_target_rule,
    flatten_event,
)
from cxone_eventbridge.matching.events import path_reader
from cxone_eventbridge.models import EventFilter, IntegrationTarget


def target(name: str, pattern: Any = None, filters: list[dict[str, Any]] | None = None) -> IntegrationTarget:
    return IntegrationTarget(
        name=name,
        endpoint="https://h.example.com/hook",
        event_pattern=pattern,
        event_filters=[EventFilter.model_validate(f) for f in filters or []],
    )


CALL = {"eventType": "call.answered", "tenantId": "t1", "contact": {"channel": "voice"}}
CHAT = {"eventType": "chat.ended", "tenantId": "t2", "contact": {"channel": "chat"}}


def test_match_returns_sorted_names() -> None:
    """match() returns the sorted names of the targets that want the event, each once."""
    table = RoutingTable(
        [
            target("zeta", {"eventType": [{"prefix": "call."}]}),
            target("alpha", {"$or": [{"tenantId": ["t1"]}, {"contact": {"channel": ["voice"]}}]}),
            target("chat-only", {"contact": {"channel": ["chat"]}}),
            target("everything"),
        ]
    )
    assert table.match(CALL) == ["alpha", "everything", "zeta"]
    assert table.match(CHAT) == ["chat-only", "everything"]
    assert len(table) == 4
    assert "alpha" in table
    assert table.names() == ["alpha", "chat-only", "everything", "zeta"]


def test_upsert_adds_and_replaces_while_running() -> None:
    """upsert adds a target or replaces the one with its name; the old rule stops matching at once."""
    table = RoutingTable()
    assert table.match(CALL) == []
    table.upsert(target("t", {"tenantId": ["t1"]}))
    assert table.match(CALL) == ["t"]
    table.upsert(target("t", {"tenantId": ["t2"]}))
    assert table.match(CALL) == []
    assert table.match(CHAT) == ["t"]
    assert len(table) == 1


def test_remove_while_running() -> None:
    """remove() drops a target (and says whether it was there); others keep matching."""
    table = RoutingTable([target("a", {"tenantId": ["t1"]}), target("b", {"eventType": [{"prefix": "call"}]})])
    assert table.remove("a") is True
    assert table.remove("a") is False
    assert table.match(CALL) == ["b"]
    assert table.remove("b") is True
    assert table.match(CALL) == []
    assert len(table) == 0


def test_invalid_rule_leaves_the_table_unchanged() -> None:
    """A filter that fails to compile raises InvalidPatternError and does not replace the current rule."""
    table = RoutingTable([target("a", {"tenantId": ["t1"]})])
    broken = target("a")
    broken.event_filters.append(EventFilter.model_construct(field="x", operator="regex", value="("))
    try:
        table.upsert(broken)
    except InvalidPatternError:
        pass
    else:
        raise AssertionError("an invalid regex filter was accepted")
    assert table.match(CALL) == ["a"]


def test_rules_without_a_presence_anchor() -> None:
    """Rules that only want fields absent are checked for every event (the complementary set)."""
    table = RoutingTable([target("no-agent", {"agent": [{"exists": False}]}), target("a", {"tenantId": ["t1"]})])
    assert table.match(CALL) == ["a", "no-agent"]
    assert table.match({**CHAT, "agent": "x"}) == []
    table.remove("no-agent")
    assert table.match(CHAT) == []


def test_duplicate_names_keep_the_last_target() -> None:
    """Constructing with two targets of one name keeps the last, as successive upserts would."""
    table = RoutingTable([target("a", {"tenantId": ["t1"]}), target("a", {"tenantId": ["t2"]})])
    assert table.match(CALL) == []
    assert table.match(CHAT) == ["a"]


def test_selective_anchor_is_chosen() -> None:
    """With many rules sharing an event type, each is found through its rare tenant, not its common type."""
    targets = [target(f"r{i}", {"eventType": ["call.answered"], "tenantId": [f"t{i}"]}) for i in range(200)]
    table = RoutingTable(targets)
    assert table.match({"eventType": "call.answered", "tenantId": "t7"}) == ["r7"]
    assert table.match({"eventType": "call.ended", "tenantId": "t7"}) == []


# -- property tests: the index agrees with the reference evaluator --------------------------------------

FIELDS = ["a", "b", "c"]
INNER = ["x", "y"]
STRINGS = ["", "a", "ab", "b", "B", "A.b", "10.0.0.1", "10.1.2.3", "2001:db8::1", "a*b"]
NUMBERS = [0, 1, 1.0, 2.5, 5, 10**20]
SCALARS = st.sampled_from([*STRINGS, *NUMBERS, True, False, None])

numeric_operator = st.one_of(
    st.tuples(st.sampled_from([">", ">=", "<", "<=", "="]), st.sampled_from([-1, 0, 1, 2.5, 5])).map(list),
    st.tuples(
        st.sampled_from([">", ">="]),
        st.sampled_from([-1, 0, 1]),
        st.sampled_from(["<", "<="]),
        st.sampled_from([2.5, 5]),
    ).map(list),
)
operators = st.one_of(
    st.builds(lambda s: {"prefix": s}, st.sampled_from(["", "a", "b", "10."])),
    st.builds(lambda s: {"prefix": {"equals-ignore-case": s}}, st.sampled_from(["A", "b"])),
    st.builds(lambda s: {"suffix": s}, st.sampled_from(["", "b", "c", ".1"])),
    st.builds(lambda s: {"suffix": {"equals-ignore-case": s}}, st.sampled_from(["B", "a"])),
    st.builds(lambda s: {"equals-ignore-case": s}, st.sampled_from(["AB", "b", "a.B"])),
    st.builds(lambda s: {"wildcard": s}, st.sampled_from(["a*", "*b", "a*b", "*", "a\\*b", "*.*", "ab"])),
    st.builds(lambda s: {"numeric": s}, numeric_operator),
    st.builds(lambda s: {"exists": s}, st.booleans()),
    st.builds(lambda s: {"cidr": s}, st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"])),
    st.builds(
        lambda s: {"anything-but": s},
        st.one_of(
            st.sampled_from(["a", "ab", 1, 2.5]),
            st.lists(st.sampled_from(["a", "b", "ab"]), min_size=1, max_size=3),
            st.lists(st.sampled_from([0, 1, 5]), min_size=1, max_size=3),
            st.builds(lambda p: {"prefix": p}, st.sampled_from(["a", "1", ["a", "1"]])),
            st.builds(lambda p: {"suffix": p}, st.sampled_from(["b", "1", ["b", "x"]])),
            st.builds(lambda p: {"equals-ignore-case": p}, st.sampled_from(["A", ["AB", "b"]])),
            st.builds(lambda p: {"wildcard": p}, st.sampled_from(["a*", ["*b", "x*"]])),
        ),
    ),
)
leaf = st.lists(st.one_of(SCALARS, operators), min_size=1, max_size=3)


def pattern_objects(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    names = FIELDS if depth == 0 else INNER
    value: st.SearchStrategy[Any] = (
        leaf if depth >= 1 else st.one_of(leaf, st.deferred(lambda: pattern_objects(depth + 1)))
    )
    fields = st.dictionaries(st.sampled_from([*names, "a.x"] if depth == 0 else names), value, min_size=1, max_size=3)
    if depth >= 1:
        return fields
    with_or = st.builds(
        lambda base, alternatives: {**base, "$or": alternatives},
        st.dictionaries(st.sampled_from(names), value, max_size=2),
        st.lists(st.deferred(lambda: pattern_objects(depth + 1)), min_size=2, max_size=3),
    )
    return st.one_of(fields, with_or)


filters = st.lists(
    st.one_of(
        st.builds(
            lambda field, operator, value: {"field": field, "operator": operator, "value": value},
            st.sampled_from(["a", "b", "a.x", "c.y"]),
            st.sampled_from(["equals", "not_equals"]),
            st.sampled_from(["a", "ab", 1, 2.5, True]),
        ),
        st.builds(
            lambda field, operator, value: {"field": field, "operator": operator, "value": value},
            st.sampled_from(["a", "b", "a.x"]),
            st.sampled_from(["contains", "prefix", "suffix", "regex", "equals_ignore_case"]),
            st.sampled_from(["a", "b", "^a", "B"]),
        ),
        st.builds(
            lambda field, operator, value: {"field": field, "operator": operator, "value": value},
            st.sampled_from(["a", "b", "a.y"]),
            st.sampled_from(["gt", "gte", "lt", "lte"]),
            st.sampled_from([0, 1, 2.5]),
        ),
        st.builds(
            lambda field, value: {"field": field, "operator": "exists", "value": value},
            st.sampled_from(["a", "c"]),
            st.booleans(),
        ),
        st.builds(
            lambda field, value: {"field": field, "operator": "in", "value": value},
            st.sampled_from(["a", "b"]),
            st.lists(st.sampled_from(["a", "b", 1]), min_size=1, max_size=3),
        ),
    ),
    max_size=2,
)

event_values = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from([*INNER, "x.y"]), inner, max_size=3)
    ),
    max_leaves=8,
)
# Mostly scalars at the patterns' own paths, so that most events come close to most rules.
events = st.dictionaries(
    st.sampled_from([*FIELDS, "a.x", "d"]), st.one_of(SCALARS, st.lists(SCALARS, max_size=3), event_values), max_size=4
)
rules = st.lists(st.tuples(st.one_of(st.none(), pattern_objects(0)), filters), min_size=1, max_size=8)


def build(rule_specs: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]) -> list[IntegrationTarget]:
    targets = []
    for index, (pattern, target_filters) in enumerate(rule_specs):
        try:
            compile_pattern(pattern) if pattern is not None else None
        except InvalidPatternError:
            assume(False)  # e.g. too many $or combinations; validity is tested elsewhere
        targets.append(target(f"r{index}", pattern, target_filters))
    return targets


def reference(targets: list[IntegrationTarget], event: dict[str, Any]) -> list[str]:
    return sorted(t.name for t in targets if compile_target_rule(t).matches(event))


def clause_paths(targets: list[IntegrationTarget]) -> list[str]:
    """Every field path the targets' rules name."""
    paths: set[str] = set()
    for t in targets:
        stack = [compile_target_rule(t).node]
        while stack:
            node = stack.pop()
            paths.update(clause.path for clause in node.clauses)
            stack.extend(alternative for group in node.any_of for alternative in group)
    return sorted(paths)


def near_event(data: st.DataObject, paths: list[str]) -> dict[str, Any]:
    """An event that sets values (from the patterns' vocabulary) at the rules' own paths, nested or dotted."""
    event: dict[str, Any] = {}
    for path in paths:
        if not data.draw(st.booleans()):
            continue
        value = data.draw(st.one_of(SCALARS, st.lists(SCALARS, min_size=1, max_size=3)))
        if data.draw(st.integers(0, 4)) == 0:
            event[path] = value  # a dotted key in the event
            continue
        node = event
        *parents, last = path.split(".")
        for segment in parents:
            child = node.get(segment)
            if not isinstance(child, dict):
                child = node[segment] = {}
            node = child
        node[last] = value
    return event


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules, st.lists(events, max_size=2), st.data())
def test_index_agrees_with_reference_evaluator(
    rule_specs: Any, sample: list[dict[str, Any]], data: st.DataObject
) -> None:
    """On random patterns, filters and events, the index (both lookup modes) gives the reference's answer."""
    targets = build(rule_specs)
    direct = RoutingTable(targets)
    walking = RoutingTable(targets, direct_lookup_paths=0)
    paths = clause_paths(targets)
    for event in [*sample, *(near_event(data, paths) for _ in range(4))]:
        expected = reference(targets, event)
        assert direct.match(event) == expected
        assert walking.match(event) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules, rules, st.lists(events, min_size=1, max_size=4), st.data())
def test_index_agrees_after_live_changes(
    first: Any, second: Any, sample: list[dict[str, Any]], data: st.DataObject
) -> None:
    """After upserts that replace rules and removals, the index still agrees with the reference."""
    old = build(first)
    table = RoutingTable(old)
    replacements = build(second)
    current = {t.name: t for t in old}
    for replacement in replacements:
        table.upsert(replacement)
        current[replacement.name] = replacement
    for name in data.draw(st.lists(st.sampled_from(sorted(current)), max_size=3, unique=True)):
        assert table.remove(name)
        del current[name]
    for event in sample:
        assert table.match(event) == reference(list(current.values()), event)


@settings(max_examples=300, deadline=None)
@given(events, st.sampled_from(["a", "b", "a.x", "a.x.y", "a.y", "c.x.y", "d", "x.y", "a.x.y.x"]))
def test_direct_lookup_agrees_with_flattening(event: dict[str, Any], path: str) -> None:
    """path_reader(path) finds the leaf values that flattening the event finds."""
    expected = sorted(map(repr, flatten_event(event).get(path, [])))
    assert sorted(map(repr, path_reader(path)(event))) == expected


BUCKET_PATTERNS: list[dict[str, Any]] = [
    {"v": [True]},
    {"v": [False]},
    {"v": [None]},
    {"v": [1]},
    {"v": ["1"]},
    {"v": [{"numeric": ["=", 1]}]},
    {"v": [{"numeric": [">", 0, "<", 2]}]},
    {"v": [{"prefix": ""}]},
    {"v": [{"prefix": "ab"}]},
    {"v": [{"suffix": ""}]},
    {"v": [{"suffix": "bc"}]},
    {"v": [{"prefix": {"equals-ignore-case": "AB"}}]},
    {"v": [{"suffix": {"equals-ignore-case": "BC"}}]},
    {"v": [{"equals-ignore-case": "ABC"}]},
    {"v": [{"wildcard": "a*c"}]},
    {"v": [{"cidr": "10.0.0.0/8"}]},
    {"v": [{"exists": True}]},
    {"v": [{"exists": False}]},
    {"v": [{"anything-but": "abc"}]},
]
BUCKET_EVENTS: list[dict[str, Any]] = [
    {"v": value}
    for value in [True, False, None, 1, 1.0, "1", 0, 1.5, "", "a", "abc", "ABC", "xbc", "10.1.2.3", [], [True, "abc"]]
] + [{}, {"v": {"w": 1}}]


def test_every_bucket_kind_against_the_reference() -> None:
    """Each kind of anchor (typed exact, numeric, prefix/suffix of every length, folded, scanned, presence)
    routes exactly the events the reference evaluator accepts."""
    targets = [target(f"p{i:02d}", pattern) for i, pattern in enumerate(BUCKET_PATTERNS)]
    for table in (RoutingTable(targets), RoutingTable(targets, direct_lookup_paths=0)):
        for event in BUCKET_EVENTS:
            assert table.match(event) == reference(targets, event), event
    # Spot checks of the reference itself, so that the comparison is not vacuous.
    assert reference(targets, {"v": True}) == ["p00", "p16", "p18"]
    assert reference(targets, {"v": 1.0}) == ["p03", "p05", "p06", "p16", "p18"]
    assert reference(targets, {"v": "ABC"}) == ["p07", "p09", "p11", "p12", "p13", "p16", "p18"]
    assert reference(targets, {}) == ["p17"]
