"""The tutorial's filters ``{field, operator, value}`` compiled into the same clauses as event patterns.

The field is a dotted path (``contact.skill.name``), as in a pattern. Operators keep the pattern
language's type-strictness: ``contains``, ``prefix``, ``suffix``, ``regex`` and ``equals_ignore_case``
match string values, ``gt``/``gte``/``lt``/``lte`` numbers; ``equals`` and ``in`` compare exactly (numbers
numerically); ``not_equals`` needs the field present with another value; ``exists`` tests presence.
A missing field fails every operator except ``exists: false``, as it did in the tutorial.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

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
from cxone_eventbridge.regex import compile_regex
from cxone_eventbridge.wire import is_finite_number

MAX_IN_VALUES = 1000


class FilterOperator(StrEnum):
    """The tutorial's filter operators."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEX = "regex"
    EXISTS = "exists"
    IN = "in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EQUALS_IGNORE_CASE = "equals_ignore_case"


class FilterSpec(Protocol):
    """A filter as the compiler reads it (``models.EventFilter`` is one)."""

    @property
    def field(self) -> str: ...

    @property
    def operator(self) -> str: ...

    @property
    def value(self) -> Any: ...


def check_filter_value(operator: FilterOperator, value: Any) -> Any:
    """The value a filter operator needs, or ValueError saying what it needs."""
    match operator:
        case FilterOperator.EXISTS:
            if value is None:
                return True
            if not isinstance(value, bool):
                raise ValueError("must be true or false for operator exists")
        case FilterOperator.IN:
            if not isinstance(value, list) or not value:
                raise ValueError("must be a non-empty list for operator in")
            if len(value) > MAX_IN_VALUES:
                raise ValueError(f"has {len(value)} values; the limit is {MAX_IN_VALUES}")
            for item in value:
                if not (isinstance(item, str | bool) or is_finite_number(item)):
                    raise ValueError("must list only strings, numbers or booleans for operator in")
        case FilterOperator.GT | FilterOperator.GTE | FilterOperator.LT | FilterOperator.LTE:
            if not is_finite_number(value):
                raise ValueError(f"must be a finite number for operator {operator.value}")
        case FilterOperator.REGEX:
            if not isinstance(value, str) or not value:
                raise ValueError("must be a non-empty string for operator regex")
            try:
                compile_regex(value)
            except InvalidPatternError as exc:
                raise ValueError(exc.message) from exc
        case (
            FilterOperator.CONTAINS | FilterOperator.PREFIX | FilterOperator.SUFFIX | FilterOperator.EQUALS_IGNORE_CASE
        ):
            if not isinstance(value, str) or not value:
                raise ValueError(f"must be a non-empty string for operator {operator.value}")
        case FilterOperator.EQUALS | FilterOperator.NOT_EQUALS:
            if not (isinstance(value, str | bool) or is_finite_number(value)):
                raise ValueError(f"must be a string, number or boolean for operator {operator.value}")
    return value


def compile_filter(event_filter: FilterSpec, *, where: str = "eventFilters") -> FieldClause:
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


def compile_filters(filters: Sequence[FilterSpec]) -> tuple[FieldClause, ...]:
    """A target's filters as clauses, all of which must hold (ANDed)."""
    return tuple(compile_filter(f, where=f"eventFilters[{index}]") for index, f in enumerate(filters))
