"""The reference evaluator: a compiled rule checked against one event directly, with no index.

It is the definition the routing table's index must agree with (the property tests compare them), so it
stays plain: every clause, every value, every test, in the obvious order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cxone_eventbridge.matching.ir import FieldClause, Node


def clause_holds(clause: FieldClause, values: Sequence[object] | None) -> bool:
    """Whether one clause holds for the leaf values found at its path."""
    if not values:
        return clause.absent_ok
    return any(test.matches(value) for value in values for test in clause.tests)


def evaluate(node: Node, values: Mapping[str, Sequence[object]]) -> bool:
    """Whether ``node`` holds for an event flattened by ``events.flatten_event``."""
    if not all(clause_holds(clause, values.get(clause.path)) for clause in node.clauses):
        return False
    return all(any(evaluate(alternative, values) for alternative in group) for group in node.any_of)
