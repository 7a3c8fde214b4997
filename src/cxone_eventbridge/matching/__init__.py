"""The pattern language: EventBridge event patterns and the tutorial's filters, compiled and indexed.

``compile_pattern`` validates and compiles one pattern; ``compile_target_rule`` ANDs a target's filters
and pattern; ``RoutingTable`` indexes many targets' rules and returns, per event, the names of the targets
that want it. See docs/matching.md for the language and its limits.
"""

from __future__ import annotations

from cxone_eventbridge.exceptions import InvalidEventError, InvalidPatternError
from cxone_eventbridge.matching.events import flatten_event
from cxone_eventbridge.matching.filters import compile_filter, compile_filters
from cxone_eventbridge.matching.index import RoutingTable
from cxone_eventbridge.matching.patterns import (
    MAX_COMBINATIONS,
    MAX_PATTERN_CHARS,
    MAX_PATTERN_DEPTH,
    MAX_VALUES_PER_FIELD,
    CompiledPattern,
    compile_pattern,
)
from cxone_eventbridge.matching.rules import CompiledRule, compile_target_rule

__all__ = [
    "MAX_COMBINATIONS",
    "MAX_PATTERN_CHARS",
    "MAX_PATTERN_DEPTH",
    "MAX_VALUES_PER_FIELD",
    "CompiledPattern",
    "CompiledRule",
    "InvalidEventError",
    "InvalidPatternError",
    "RoutingTable",
    "compile_filter",
    "compile_filters",
    "compile_pattern",
    "compile_target_rule",
    "flatten_event",
]
