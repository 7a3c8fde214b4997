"""The tutorial's filters ``{field, operator, value}`` compiled into the same clauses as event patterns.

The field is a dotted path (``contact.skill.name``), as in a pattern. Operators keep the pattern
language's type-strictness: ``contains``, ``prefix``, ``suffix``, ``regex`` and ``equals_ignore_case``
match string values, ``gt``/``gte``/``lt``/``lte`` numbers; ``equals`` and ``in`` compare exactly (numbers
numerically); ``not_equals`` needs the field present with another value; ``exists`` tests presence.
A missing field fails every operator except ``exists: false``, as it did in the tutorial.
"""

from __future__ import annotations

from collections.abc import Sequence

from cxone_eventbridge.exceptions import InvalidPatternError
from cxone_eventbridge.matching.events import MAX_PATH_SEGMENTS
from cxone_eventbridge.matching.ir import (
    AnythingBut,
    Contains,
    EqualsIgnoreCase,
    Exact,
    Exists,
    FieldClause,
    Numeric,
    Prefix,
    Regex,
    Suffix,
    ValueTest,
)
from cxone_eventbridge.models import EventFilter, FilterOperator, check_filter_value
from cxone_eventbridge.regex import compile_regex


def compile_filter(event_filter: EventFilter, *, where: str = "eventFilters") -> FieldClause:
    """One filter as a clause, or InvalidPatternError naming the filter."""
    path = event_filter.field
    if len(path.split(".")) > MAX_PATH_SEGMENTS:
        raise InvalidPatternError(f"{where}.field: is deeper than {MAX_PATH_SEGMENTS} fields")
    operator = FilterOperator(event_filter.operator)
    try:
        value = check_filter_value(operator, event_filter.value)
    except ValueError as exc:
        raise InvalidPatternError(f"{where}.value: {exc}") from exc
    tests: tuple[ValueTest, ...]
    match operator:
        case FilterOperator.EXISTS:
            return FieldClause(path, (Exists(),)) if value else FieldClause(path, (), absent_ok=True)
        case FilterOperator.EQUALS:
            tests = (Exact(value),)
        case FilterOperator.NOT_EQUALS:
            tests = (AnythingBut((Exact(value),)),)
        case FilterOperator.IN:
            tests = tuple(Exact(item) for item in value)
        case FilterOperator.CONTAINS:
            tests = (Contains(value),)
        case FilterOperator.PREFIX:
            tests = (Prefix(value),)
        case FilterOperator.SUFFIX:
            tests = (Suffix(value),)
        case FilterOperator.EQUALS_IGNORE_CASE:
            tests = (EqualsIgnoreCase(value.casefold()),)
        case FilterOperator.REGEX:
            tests = (Regex(value, compile_regex(value)),)
        case FilterOperator.GT:
            tests = (Numeric(lower=value),)
        case FilterOperator.GTE:
            tests = (Numeric(lower=value, lower_inclusive=True),)
        case FilterOperator.LT:
            tests = (Numeric(upper=value),)
        case FilterOperator.LTE:
            tests = (Numeric(upper=value, upper_inclusive=True),)
    return FieldClause(path, tests)


def compile_filters(filters: Sequence[EventFilter]) -> tuple[FieldClause, ...]:
    """A target's filters as clauses, all of which must hold (ANDed)."""
    return tuple(compile_filter(f, where=f"eventFilters[{index}]") for index, f in enumerate(filters))
