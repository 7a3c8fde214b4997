"""The pattern language: EventBridge event patterns and the tutorial's filters, compiled and indexed.

Placeholder until the matching engine lands: validates that a pattern is a JSON object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cxone_eventbridge.exceptions import InvalidPatternError


@dataclass(frozen=True)
class CompiledPattern:
    source: dict[str, Any]

    def matches(self, event: dict[str, Any]) -> bool:
        raise NotImplementedError


def compile_pattern(pattern: Any) -> CompiledPattern:
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except json.JSONDecodeError as exc:
            raise InvalidPatternError(f"pattern is not valid JSON: {exc.msg}") from exc
    if not isinstance(pattern, dict):
        raise InvalidPatternError("pattern must be a JSON object")
    return CompiledPattern(pattern)


__all__ = ["CompiledPattern", "compile_pattern"]
