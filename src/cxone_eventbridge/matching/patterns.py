"""EventBridge event patterns: parsed, validated against limits and compiled into ``ir.Node``.

Every problem of a pattern is reported in one ``InvalidPatternError``, each named by its place in the
pattern (``detail.state[0]``, ``$or[1].source``) with a reason in the spirit of AWS's messages. The
parser recurses only after checking the nesting limit, so a hostile pattern cannot exhaust the stack.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from cxone_eventbridge.exceptions import FieldError, InvalidPatternError
from cxone_eventbridge.matching.evaluate import evaluate
from cxone_eventbridge.matching.events import MAX_PATH_SEGMENTS, flatten_event
from cxone_eventbridge.matching.ir import (
    AnythingBut,
    Cidr,
    EqualsIgnoreCase,
    Exact,
    Exists,
    FieldClause,
    Node,
    Numeric,
    Prefix,
    Suffix,
    ValueTest,
    Wildcard,
    count_conjunctions,
)
from cxone_eventbridge.matching.wildcard_complexity import MAX_WILDCARD_COMPLEXITY, wildcard_complexity
from cxone_eventbridge.suggest import did_you_mean
from cxone_eventbridge.wire import describe_json_type, is_finite_number, is_json_number

MAX_PATTERN_CHARS = 32_768
MAX_PATTERN_DEPTH = MAX_PATH_SEGMENTS
MAX_VALUES_PER_FIELD = 1000
MAX_COMBINATIONS = 1000
_MAX_ITEMS = 20_000  # keys and values parsed before giving up: bounds the work before the size check
_MAX_REPORTED_ERRORS = 10

# The match types an operator object may name, and those anything-but may hold: for "did you mean".
_MATCH_TYPES = ("prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists", "cidr", "wildcard")
_ANYTHING_BUT_TYPES = ("prefix", "suffix", "equals-ignore-case", "wildcard")
_NUMERIC_LOWER = {">": False, ">=": True}
_NUMERIC_UPPER = {"<": False, "<=": True}


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """A validated event pattern: ``source`` is its JSON object, ``node`` its compiled form."""

    source: dict[str, Any]
    node: Node

    def matches(self, event: object) -> bool:
        """Whether ``event`` (a JSON object) matches; InvalidEventError for anything else."""
        return evaluate(self.node, flatten_event(event))


def compile_pattern(pattern: object) -> CompiledPattern:
    """Compile a pattern given as a dict or a JSON string, or raise InvalidPatternError saying why."""
    if isinstance(pattern, str | bytes):
        pattern = _load_json(pattern)
    if not isinstance(pattern, dict):
        raise InvalidPatternError(f"an event pattern must be a JSON object, not {describe_json_type(pattern)}")
    parser = _Parser()
    node = parser.parse(pattern)
    if not parser.errors:
        combinations = count_conjunctions(node)
        if combinations > MAX_COMBINATIONS:
            parser.fail("", f"expands to {combinations} combinations through $or; the limit is {MAX_COMBINATIONS}")
        parser.check_wildcard_complexity()
    source: dict[str, Any] = {}
    if not parser.errors:
        text = json.dumps(pattern, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if len(text) > MAX_PATTERN_CHARS:
            parser.fail("", f"is {len(text)} characters long; the limit is {MAX_PATTERN_CHARS}")
        else:
            source = json.loads(text)
    if parser.errors:
        raise _error(parser.errors)
    return CompiledPattern(source, node)


def _load_json(text: str | bytes) -> Any:
    if len(text) > MAX_PATTERN_CHARS:
        raise InvalidPatternError(f"an event pattern is {len(text)} characters long; the limit is {MAX_PATTERN_CHARS}")

    def refuse_constant(name: str) -> Any:
        raise InvalidPatternError(f"an event pattern is not valid JSON: {name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidPatternError(
            f"an event pattern is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise InvalidPatternError("an event pattern is not valid JSON: it is not UTF-8 text") from exc
    except InvalidPatternError:
        raise  # from refuse_constant (it is a ValueError too)
    except ValueError as exc:  # e.g. an integer longer than Python's 4,300-digit conversion limit
        raise InvalidPatternError(f"an event pattern is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidPatternError(
            f"an event pattern is nested too deeply; the limit is {MAX_PATTERN_DEPTH} levels"
        ) from exc


def _error(errors: list[FieldError]) -> InvalidPatternError:
    shown = [str(error) for error in errors[:_MAX_REPORTED_ERRORS]]
    if len(errors) > _MAX_REPORTED_ERRORS:
        shown.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more problems")
    # One message listing every problem (models/target.py reports ``.message`` as the eventPattern error).
    return InvalidPatternError("; ".join(shown))


class _TooBigError(Exception):
    """Raised inside the parser when the item budget is spent; becomes one size error."""


class _Parser:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self._items = 0
        self._path = ""  # the dotted field path of the leaf being parsed
        # Every wildcard of the pattern (anything-but's too), by field path, for the complexity rule.
        self.wildcards: dict[str, list[list[str | None]]] = {}

    def check_wildcard_complexity(self) -> None:
        """Refuse, as EventBridge does, a field whose wildcards are too complex (see wildcard_complexity)."""
        # All of a path's wildcards count together, even across $or alternatives: EventBridge may keep
        # some of them apart, so this can refuse a little more than it does, never less.
        for path, patterns in self.wildcards.items():
            if wildcard_complexity(patterns) > MAX_WILDCARD_COMPLEXITY:
                self.fail(
                    path,
                    "Rule is too complex - try using fewer wildcard characters or fewer repeating character "
                    f"sequences after a wildcard character (more than {MAX_WILDCARD_COMPLEXITY} wildcard prefixes "
                    "of this field can match one value at once)",
                )

    def fail(self, where: str, message: str) -> None:
        self.errors.append(FieldError(where, message if where else f"the event pattern {message}"))

    def _spend(self, count: int = 1) -> None:
        self._items += count
        if self._items > _MAX_ITEMS:
            raise _TooBigError

    def parse(self, pattern: dict[Any, Any]) -> Node:
        if not pattern:
            self.fail("", "must not be empty; omit the pattern to receive every event")
            return Node()
        try:
            return self._object(pattern, [], "", 1)
        except _TooBigError:
            self.errors = [FieldError("", f"the event pattern has more than {_MAX_ITEMS} keys and values")]
            return Node()

    def _object(self, obj: dict[Any, Any], segments: list[str], where: str, depth: int) -> Node:
        clauses: list[FieldClause] = []
        groups: list[tuple[Node, ...]] = []
        for key, value in obj.items():
            self._spend()
            if not isinstance(key, str):
                self.fail(where, f"field names must be strings, not {describe_json_type(key)}")
                continue
            here = f"{where}.{key}" if where else key
            if key == "$or":
                group = self._or(value, segments, here, depth)
                if group:
                    groups.append(group)
                continue
            parts = key.split(".")
            if any(not part for part in parts):
                self.fail(here, "field names must not be empty or have an empty dotted segment")
                continue
            path = [*segments, *parts]
            if len(path) > MAX_PATTERN_DEPTH:
                self.fail(here, f"is {len(path)} fields deep; the limit is {MAX_PATTERN_DEPTH}")
                continue
            if isinstance(value, dict):
                if not value:
                    self.fail(here, "must not be an empty object")
                    continue
                if depth + 1 > MAX_PATTERN_DEPTH:
                    self.fail(here, f"is nested {depth + 1} levels deep; the limit is {MAX_PATTERN_DEPTH}")
                    continue
                child = self._object(value, path, here, depth + 1)
                clauses.extend(child.clauses)
                groups.extend(child.any_of)
            elif isinstance(value, list | tuple):
                clause = self._leaf(value, ".".join(path), here)
                if clause is not None:
                    clauses.append(clause)
            else:
                self.fail(here, f"must be an object or an array of match values, not {describe_json_type(value)}")
        return Node(tuple(clauses), tuple(groups))

    def _or(self, value: object, segments: list[str], where: str, depth: int) -> tuple[Node, ...]:
        if not isinstance(value, list | tuple) or len(value) < 2:
            self.fail(where, "must be an array of at least two objects")
            return ()
        if depth + 1 > MAX_PATTERN_DEPTH:
            self.fail(where, f"is nested {depth + 1} levels deep; the limit is {MAX_PATTERN_DEPTH}")
            return ()
        alternatives: list[Node] = []
        for index, alternative in enumerate(value):
            self._spend()
            here = f"{where}[{index}]"
            if not isinstance(alternative, dict) or not alternative:
                self.fail(here, f"must be a non-empty object, not {describe_json_type(alternative)}")
                continue
            alternatives.append(self._object(alternative, segments, here, depth + 1))
        return tuple(alternatives)

    def _leaf(self, values: list[Any] | tuple[Any, ...], path: str, where: str) -> FieldClause | None:
        if not values:
            self.fail(where, "must not be an empty array")
            return None
        if len(values) > MAX_VALUES_PER_FIELD:
            self.fail(where, f"has {len(values)} match values; the limit is {MAX_VALUES_PER_FIELD}")
            return None
        self._spend(len(values))
        self._path = path
        tests: list[ValueTest] = []
        absent_ok = False
        errors_before = len(self.errors)
        for index, item in enumerate(values):
            here = f"{where}[{index}]"
            if item is None or isinstance(item, str | bool):
                tests.append(Exact(item))
            elif is_json_number(item):
                if not is_finite_number(item):
                    self.fail(here, "numbers must be finite")
                else:
                    tests.append(Exact(item))
            elif isinstance(item, dict):
                test = self._operator(item, here)
                if test is _ABSENT:
                    absent_ok = True
                elif test is not None:
                    tests.append(test)
            else:
                self.fail(
                    here,
                    "match values must be strings, numbers, true, false, null or an operator object, "
                    f"not {describe_json_type(item)}",
                )
        if len(self.errors) > errors_before:
            return None
        return FieldClause(path, tuple(tests), absent_ok)

    def _operator(self, item: dict[Any, Any], where: str) -> ValueTest | None:
        if len(item) != 1:
            self.fail(where, f"an operator object must have exactly one key, not {len(item)}")
            return None
        ((name, argument),) = item.items()
        here = f"{where}.{name}"
        match name:
            case "prefix" | "suffix":
                return self._affix(name, argument, here)
            case "equals-ignore-case":
                if not isinstance(argument, str):
                    self.fail(here, f"must be a string, not {describe_json_type(argument)}")
                    return None
                return EqualsIgnoreCase(argument.casefold())
            case "anything-but":
                return self._anything_but(argument, here)
            case "numeric":
                return self._numeric(argument, here)
            case "exists":
                if not isinstance(argument, bool):
                    self.fail(here, f"must be true or false, not {describe_json_type(argument)}")
                    return None
                return Exists() if argument else _ABSENT
            case "cidr":
                return self._cidr(argument, here)
            case "wildcard":
                if not isinstance(argument, str):
                    self.fail(here, f"must be a string, not {describe_json_type(argument)}")
                    return None
                return self._wildcard(argument, here, simplify=True)
            case _:
                self.fail(where, f"unrecognized match type {name!r}{did_you_mean(str(name), _MATCH_TYPES)}")
                return None

    def _affix(self, name: str, argument: object, where: str) -> ValueTest | None:
        test_class = Prefix if name == "prefix" else Suffix
        if isinstance(argument, str):
            return test_class(argument)
        if isinstance(argument, dict) and len(argument) == 1 and "equals-ignore-case" in argument:
            text = argument["equals-ignore-case"]
            if isinstance(text, str):
                return test_class(text.casefold(), ignore_case=True)
            self.fail(f"{where}.equals-ignore-case", f"must be a string, not {describe_json_type(text)}")
            return None
        self.fail(where, 'must be a string or {"equals-ignore-case": string}')
        return None

    def _anything_but(self, argument: object, where: str) -> ValueTest | None:
        if isinstance(argument, str) or is_finite_number(argument):
            return AnythingBut((Exact(argument),))  # type: ignore[arg-type]
        if isinstance(argument, list | tuple):
            if not argument:
                self.fail(where, "must not be an empty array")
                return None
            if len(argument) > MAX_VALUES_PER_FIELD:
                self.fail(where, f"has {len(argument)} values; the limit is {MAX_VALUES_PER_FIELD}")
                return None
            self._spend(len(argument))
            all_strings = all(isinstance(value, str) for value in argument)
            all_numbers = all(is_finite_number(value) for value in argument)
            if not (all_strings or all_numbers):
                self.fail(where, "an anything-but list must hold only strings or only (finite) numbers")
                return None
            return AnythingBut(tuple(Exact(value) for value in argument))
        if isinstance(argument, dict) and len(argument) == 1:
            ((name, inner),) = argument.items()
            here = f"{where}.{name}"
            match name:
                case "prefix" | "suffix":
                    # One text or a list of them, as EventBridge accepts: {"prefix": ["init", "test"]}.
                    texts = self._strings(inner, here)
                    if texts is None:
                        return None
                    if not all(texts):
                        self.fail(here, "must be a non-empty string or a non-empty array of non-empty strings")
                        return None
                    test_class = Prefix if name == "prefix" else Suffix
                    return AnythingBut(tuple(test_class(text) for text in texts))
                case "equals-ignore-case":
                    texts = self._strings(inner, here)
                    return None if texts is None else AnythingBut(tuple(EqualsIgnoreCase(t.casefold()) for t in texts))
                case "wildcard":
                    texts = self._strings(inner, here)
                    if texts is None:
                        return None
                    tests = [self._wildcard(text, here, simplify=False) for text in texts]
                    if any(test is None for test in tests):
                        return None
                    return AnythingBut(tuple(test for test in tests if test is not None))
                case _:
                    hint = did_you_mean(str(name), _ANYTHING_BUT_TYPES)
                    self.fail(where, f"anything-but does not support {name!r}{hint}")
                    return None
        self.fail(
            where,
            "must be a string, a number, an array of strings or of numbers, or an object with prefix, "
            f"suffix, equals-ignore-case or wildcard, not {describe_json_type(argument)}",
        )
        return None

    def _strings(self, argument: object, where: str) -> list[str] | None:
        if isinstance(argument, str):
            return [argument]
        if isinstance(argument, list | tuple) and argument and all(isinstance(text, str) for text in argument):
            if len(argument) > MAX_VALUES_PER_FIELD:
                self.fail(where, f"has {len(argument)} values; the limit is {MAX_VALUES_PER_FIELD}")
                return None
            self._spend(len(argument))
            return list(argument)
        self.fail(where, "must be a string or a non-empty array of strings")
        return None

    def _numeric(self, argument: object, where: str) -> ValueTest | None:
        if not isinstance(argument, list | tuple) or not argument:
            self.fail(where, "must be a non-empty array of operators and numbers")
            return None
        if len(argument) % 2 or len(argument) > 4:
            self.fail(where, 'must be one or two (operator, number) pairs, like [">", 0, "<=", 5]')
            return None
        lower: tuple[float | int, bool] | None = None
        upper: tuple[float | int, bool] | None = None
        for index in range(0, len(argument), 2):
            operator, number = argument[index], argument[index + 1]
            if not is_finite_number(number):
                self.fail(f"{where}[{index + 1}]", f"must be a finite number, not {describe_json_type(number)}")
                return None
            if operator == "=":
                if len(argument) != 2:
                    self.fail(where, '"=" cannot be combined with another operator')
                    return None
                return Numeric(number, True, number, True)
            if operator in _NUMERIC_LOWER:
                if lower is not None:
                    self.fail(where, "has two lower bounds")
                    return None
                if upper is not None:
                    # EventBridge's validator reads the lower bound first; [">", 0, "<", 1] is the valid order.
                    self.fail(where, 'the lower bound must come before the upper bound, like [">", 0, "<=", 5]')
                    return None
                lower = (number, _NUMERIC_LOWER[operator])
            elif operator in _NUMERIC_UPPER:
                if upper is not None:
                    self.fail(where, "has two upper bounds")
                    return None
                upper = (number, _NUMERIC_UPPER[operator])
            else:
                self.fail(f"{where}[{index}]", f"unrecognized numeric operator {operator!r}; use <, <=, =, >= or >")
                return None
        if lower is not None and upper is not None:
            (low, low_inclusive), (high, high_inclusive) = lower, upper
            if low > high or (low == high and not (low_inclusive and high_inclusive)):
                self.fail(where, "the lower bound must be less than the upper bound")
                return None
        return Numeric(
            lower[0] if lower else None,
            lower[1] if lower else False,
            upper[0] if upper else None,
            upper[1] if upper else False,
        )

    def _cidr(self, argument: object, where: str) -> ValueTest | None:
        if not isinstance(argument, str):
            self.fail(where, f"must be a string like 10.0.0.0/24, not {describe_json_type(argument)}")
            return None
        try:
            return Cidr(ipaddress.ip_network(argument.strip(), strict=False))
        except ValueError:
            self.fail(where, f"malformed CIDR {argument!r}")
            return None

    def _wildcard(self, text: str, where: str, *, simplify: bool) -> ValueTest | None:
        pieces = parse_wildcard(text)
        if isinstance(pieces, str):
            self.fail(where, pieces)
            return None
        self.wildcards.setdefault(self._path, []).append(pieces)
        if simplify:
            # Shapes with an exact, prefix or suffix meaning use those (indexable) tests instead of RE2.
            stars = [i for i, piece in enumerate(pieces) if piece is None]
            literals = [piece for piece in pieces if piece is not None]
            if not stars:
                return Exact("".join(literals))
            if stars == [len(pieces) - 1] and len(pieces) <= 2:
                return Prefix(literals[0] if literals else "")
            if stars == [0] and len(pieces) == 2:
                return Suffix(literals[0])
        return Wildcard(text, tuple(pieces))


_ABSENT: Any = object()  # the marker ``_operator`` returns for ``exists: false``


def parse_wildcard(text: str) -> list[str | None] | str:
    """Literal runs and ``None`` for each ``*``; or the reason the wildcard is invalid."""
    pieces: list[str | None] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            following = text[index + 1 : index + 2]
            if following not in ("*", "\\"):
                return f"invalid escape at position {index}: only \\* and \\\\ may follow a backslash"
            literal.append(following)
            index += 2
            continue
        if char == "*":
            if literal:
                pieces.append("".join(literal))
                literal = []
            elif pieces and pieces[-1] is None:
                return f"consecutive wildcard characters at position {index} are not allowed"
            pieces.append(None)
        else:
            literal.append(char)
        index += 1
    if literal:
        pieces.append("".join(literal))
    return pieces
