"""A target's routing rule: its filters AND its event pattern; with neither, it receives every event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cxone_eventbridge.matching.evaluate import evaluate
from cxone_eventbridge.matching.events import flatten_event
from cxone_eventbridge.matching.filters import FilterSpec, compile_filters
from cxone_eventbridge.matching.ir import Node, and_nodes
from cxone_eventbridge.matching.patterns import compile_pattern


class RuleSource(Protocol):
    """What a target's rule is compiled from (``models.IntegrationTarget`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def event_filters(self) -> Sequence[FilterSpec]: ...

    @property
    def event_pattern(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """The compiled rule of one target, named after it."""

    name: str
    node: Node

    def matches(self, event: object) -> bool:
        """Whether ``event`` (a JSON object) is routed to this target, by the reference evaluator."""
        return evaluate(self.node, flatten_event(event))


def compile_target_rule(target: RuleSource) -> CompiledRule:
    """The target's filters and pattern, ANDed, compiled; InvalidPatternError if either is invalid."""
    filters = Node(compile_filters(target.event_filters))
    if target.event_pattern is None:
        return CompiledRule(target.name, filters)
    return CompiledRule(target.name, and_nodes(filters, compile_pattern(target.event_pattern).node))
