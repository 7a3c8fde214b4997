"""What a target receives: the event, a part of it, a constant, or an input transformer's output.

EventBridge's three forms, with its semantics:

- ``input``: a constant JSON text, sent as it is (``application/json``).
- ``inputPath``: a JSON path (``$.detail``, ``$.resources[0]``); the value it finds, as JSON (``null``
  when the path finds nothing).
- ``inputTransformer``: ``inputPathsMap`` names up to 100 variables, each a JSON path, and
  ``inputTemplate`` places them as ``<name>``. A template that is a JSON object or array is JSON: a
  placeholder in a value position becomes the value's JSON (``null`` when its path found nothing), a
  placeholder inside a string becomes the value's text (JSON-escaped, so quotes in values cannot break
  the string; an object or array loses its quotes, as EventBridge does: ``{a:b}``), and the result is
  sent minified as ``application/json``. A template that is a quoted string (``"instance <id> is in
  <state>"``) renders to that JSON string and is sent as its text; any other template is plain text.
  Both are sent as ``text/plain; charset=utf-8``.

JSON paths use dot notation with array indices and ``*`` for every member or element (a wildcard
makes the value a list); bracket notation for names is refused, as EventBridge asks for dot notation.

Predefined variables. EventBridge's names are kept where they have a meaning here: ``<aws.events.event>``
(the event without its top-level ``detail``, as EventBridge sends it), ``<aws.events.event.json>`` (the
whole event), ``<aws.events.rule-name>`` (the target's name: a target plays the part of a rule) and
``<aws.events.event.ingestion-time>`` (when the router accepted the event, ISO 8601 UTC).
``<aws.events.rule-arn>`` has no meaning here (there are no ARNs) and is refused. This project's own
names: ``<cxeb.event>`` (the whole event), ``<cxeb.event-id>``, ``<cxeb.ingestion-time>``,
``<cxeb.target-name>`` and ``<cxeb.target-id>``. Variable names may not start with ``aws.`` or ``cxeb.``.
The event variables can only stand as JSON values, never inside a string, as in EventBridge.

Everything is checked when a target is validated (``compile_target_input``), never at delivery: each
problem is a ``FieldError`` at its wire path (``inputTransformer.inputTemplate``), all reported at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from cxone_eventbridge.exceptions import FieldError, InvalidTransformError

MAX_VARIABLES = 100
MAX_TEMPLATE_CHARS = 8192
MAX_INPUT_CHARS = 8192
MAX_PATH_CHARS = 256
MAX_PATH_STEPS = 32

JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"

_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]{1,64})>")
_PATH_STEP = re.compile(r"\.([^.\[\]\s]+)|\[(\d{1,9}|\*)\]")
_RESERVED_PREFIXES = ("aws.", "cxeb.")
_WILDCARD: Final = "*"


class _Missing:
    """What a path that finds nothing yields."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

# Predefined variables: the name and what it reads from the context.
_EVENT_VARIABLES = frozenset({"aws.events.event", "aws.events.event.json", "cxeb.event"})
_PREDEFINED = frozenset(
    {
        *_EVENT_VARIABLES,
        "aws.events.rule-name",
        "aws.events.event.ingestion-time",
        "cxeb.event-id",
        "cxeb.ingestion-time",
        "cxeb.target-name",
        "cxeb.target-id",
    }
)
_REFUSED_PREDEFINED = {
    "aws.events.rule-arn": "has no meaning here (targets have no ARN); use <cxeb.target-id> or <cxeb.target-name>",
}


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """What a template may name besides the event: the event's id, when it was accepted, the target."""

    event_id: str
    ingestion_time: float  # Unix seconds
    target_name: str
    target_id: str | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """The bytes a target receives and their content type."""

    body: bytes
    content_type: str


# ---------------------------------------------------------------------------------------------- paths


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """``$.a.b[0]`` as steps (``"a"``, ``"b"``, ``0``; ``"*"`` for a wildcard); ValueError saying why not."""
    if len(path) > MAX_PATH_CHARS:
        raise ValueError(f"is {len(path)} characters long; the limit is {MAX_PATH_CHARS}")
    if not path.startswith("$"):
        raise ValueError("must start with $ (like $.detail.state)")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            if path.startswith("['", position) or path.startswith('["', position):
                raise ValueError(f"use dot notation, not brackets, for names (at position {position})")
            raise ValueError(f"is not a JSON path in dot notation at position {position}: {path[position:][:20]!r}")
        name, index = match.groups()
        if name is not None:
            steps.append(name)
        else:
            steps.append(_WILDCARD if index == "*" else int(index))
        position = match.end()
    if len(steps) > MAX_PATH_STEPS:
        raise ValueError(f"has {len(steps)} steps; the limit is {MAX_PATH_STEPS}")
    return tuple(steps)


def resolve_path(document: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at ``steps`` in ``document``; MISSING when there is none; a list when a step is ``*``."""
    found = [document]
    many = False
    for step in steps:
        following: list[Any] = []
        if step == _WILDCARD:
            many = True
            for value in found:
                if isinstance(value, dict):
                    following.extend(value.values())
                elif isinstance(value, list):
                    following.extend(value)
        elif isinstance(step, int):
            following = [value[step] for value in found if isinstance(value, list) and step < len(value)]
        else:
            following = [value[step] for value in found if isinstance(value, dict) and step in value]
        found = following
    if many:
        return found
    return found[0] if found else MISSING


# ----------------------------------------------------------------------------------------- templates


@dataclass(frozen=True, slots=True)
class _Slot:
    """A placeholder: its variable and whether it stands inside a JSON string."""

    name: str
    in_string: bool


_Piece = str | _Slot


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A validated input template, split into literal text and placeholders."""

    kind: str  # "json" (object or array), "string" (a quoted JSON string) or "text"
    pieces: tuple[_Piece, ...]
    paths: Mapping[str, tuple[str | int, ...]]

    def render_text(self, event: Mapping[str, Any], context: DeliveryContext) -> str:
        """The template with its placeholders filled, as text (the form EventBridge documents)."""
        values: dict[str, Any] = {}
        parts: list[str] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                parts.append(piece)
                continue
            if piece.name not in values:
                values[piece.name] = self._value(piece.name, event, context)
            parts.append(_fill(values[piece.name], in_string=piece.in_string, kind=self.kind))
        return "".join(parts)

    def render(self, event: Mapping[str, Any], context: DeliveryContext) -> Payload:
        """What the target receives."""
        text = self.render_text(event, context)
        if self.kind == "json":
            compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
            return Payload(compact.encode(), JSON_CONTENT_TYPE)
        if self.kind == "string":
            return Payload(json.loads(text).encode(), TEXT_CONTENT_TYPE)
        return Payload(text.encode(), TEXT_CONTENT_TYPE)

    def _value(self, name: str, event: Mapping[str, Any], context: DeliveryContext) -> Any:
        if name in self.paths:
            return resolve_path(event, self.paths[name])
        return predefined_value(name, event, context)


def predefined_value(name: str, event: Mapping[str, Any], context: DeliveryContext) -> Any:
    """The value of a predefined variable (see the module's docstring)."""
    match name:
        case "aws.events.event":
            return {key: value for key, value in event.items() if key != "detail"}
        case "aws.events.event.json" | "cxeb.event":
            return event
        case "aws.events.rule-name" | "cxeb.target-name":
            return context.target_name
        case "cxeb.target-id":
            return context.target_id
        case "cxeb.event-id":
            return context.event_id
        case _:  # the ingestion times
            moment = datetime.fromtimestamp(context.ingestion_time, UTC)
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fill(value: Any, *, in_string: bool, kind: str) -> str:
    if kind == "text":
        if value is MISSING:
            return ""
        return value if isinstance(value, str) else _compact(value)
    if not in_string:
        return "null" if value is MISSING else _compact(value)
    if value is MISSING:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list):
        text = _compact(value).replace('"', "")  # EventBridge drops the quotes: {"a":"b"} reads {a:b}
    else:
        text = _compact(value)
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _template_kind(template: str) -> str:
    start = template.lstrip()[:1]
    if start in ("{", "["):
        return "json"
    if start == '"':
        return "string"
    return "text"


def _split(template: str, kind: str, known: frozenset[str]) -> tuple[list[_Piece], list[str]]:
    """The template's pieces, and the problems found while splitting it."""
    pieces: list[_Piece] = []
    problems: list[str] = []
    literal: list[str] = []
    in_string = False
    string_has_slot = False
    index = 0
    while index < len(template):
        char = template[index]
        if kind != "text" and in_string and char == "\\":
            literal.append(template[index : index + 2])
            index += 2
            continue
        if kind != "text" and char == '"':
            in_string = not in_string
            if not in_string and string_has_slot and _next_is_colon(template, index + 1):
                problems.append("a placeholder cannot be used as an object key")
            string_has_slot = False
            literal.append(char)
            index += 1
            continue
        match = _PLACEHOLDER.match(template, index) if char == "<" else None
        if match is None:
            literal.append(char)
            index += 1
            continue
        name = match.group(1)
        quoted = in_string or kind == "text"
        if name in _REFUSED_PREDEFINED:
            problems.append(f"<{name}> {_REFUSED_PREDEFINED[name]}")
        elif name not in known:
            if not quoted:
                problems.append(f"<{name}> is not a variable; define it in inputPathsMap")
            literal.append(match.group(0))  # inside text, an unknown <word> is just text
            index = match.end()
            continue
        elif name in _EVENT_VARIABLES and quoted:
            problems.append(f"<{name}> can only be used as a JSON value, not inside a string")
        elif not quoted and _next_is_colon(template, match.end()):
            problems.append(f"<{name}>: a placeholder cannot be used as an object key")
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append(_Slot(name, in_string=quoted))
        string_has_slot = string_has_slot or in_string
        index = match.end()
    if literal:
        pieces.append("".join(literal))
    return pieces, problems


def _next_is_colon(text: str, index: int) -> bool:
    rest = text[index:].lstrip()
    return rest.startswith(":")


def compile_template(
    paths_map: Mapping[str, str], template: str, *, where: str = "inputTransformer"
) -> CompiledTemplate:
    """Validate an input transformer; InvalidTransformError listing every problem at its field path."""
    errors: list[FieldError] = []
    paths: dict[str, tuple[str | int, ...]] = {}
    map_where = f"{where}.inputPathsMap" if where else "inputPathsMap"
    if len(paths_map) > MAX_VARIABLES:
        errors.append(FieldError(map_where, f"has {len(paths_map)} variables; the limit is {MAX_VARIABLES}"))
    for name, path in paths_map.items():
        if name.casefold().startswith(_RESERVED_PREFIXES):
            errors.append(FieldError(f"{map_where}.{name}", "is a reserved name (aws.* and cxeb.* are predefined)"))
            continue
        if not _VARIABLE_NAME.match(name):
            errors.append(FieldError(f"{map_where}.{name}", "variable names are 1-64 letters, digits, _ or -"))
            continue
        try:
            paths[name] = parse_json_path(path)
        except ValueError as exc:
            errors.append(FieldError(f"{map_where}.{name}", str(exc)))
    template_where = f"{where}.inputTemplate" if where else "inputTemplate"
    if not isinstance(template, str) or not template.strip():
        errors.append(FieldError(template_where, "must be a non-empty string"))
        raise InvalidTransformError("invalid input transformer", errors)
    if len(template) > MAX_TEMPLATE_CHARS:
        errors.append(FieldError(template_where, f"is {len(template)} characters; the limit is {MAX_TEMPLATE_CHARS}"))
        raise InvalidTransformError("invalid input transformer", errors)
    kind = _template_kind(template)
    pieces, problems = _split(template, kind, frozenset(paths_map) | _PREDEFINED)
    errors.extend(FieldError(template_where, problem) for problem in problems)
    compiled = CompiledTemplate(kind, tuple(pieces), paths)
    if not errors and kind != "text":
        problem = _json_problem(compiled, kind)
        if problem is not None:
            errors.append(FieldError(template_where, problem))
    if errors:
        raise InvalidTransformError("invalid input transformer", errors)
    return compiled


def _json_problem(compiled: CompiledTemplate, kind: str) -> str | None:
    """Why the template is not JSON of its kind once filled (with nulls and empty text), or None."""
    sample = "".join(
        piece if isinstance(piece, str) else ("" if piece.in_string else "null") for piece in compiled.pieces
    )
    try:
        value = json.loads(sample)
    except json.JSONDecodeError as exc:
        what = "a JSON object or array" if kind == "json" else "one JSON string"
        return f"must be {what} once its placeholders are filled: {exc.msg} at column {exc.colno}"
    del value  # a template that starts with " and parses is one JSON string; { or [ an object or array
    return None


# ----------------------------------------------------------------------------------- a target's input


@dataclass(frozen=True, slots=True)
class TargetInput:
    """How one target's body is made from an event: exactly one of the three forms is set."""

    constant: bytes | None = None
    path: tuple[str | int, ...] | None = None
    template: CompiledTemplate | None = None

    def render(self, event_body: bytes, context: DeliveryContext) -> Payload:
        """The payload for an event given as its accepted JSON bytes."""
        if self.constant is not None:
            return Payload(self.constant, JSON_CONTENT_TYPE)
        event = json.loads(event_body)
        if self.path is not None:
            found = resolve_path(event, self.path)
            return Payload(_compact(None if found is MISSING else found).encode(), JSON_CONTENT_TYPE)
        assert self.template is not None
        return self.template.render(event, context)


def check_constant_input(text: str) -> str:
    """A constant ``input``: JSON text of at most MAX_INPUT_CHARS; ValueError saying why not."""
    if len(text) > MAX_INPUT_CHARS:
        raise ValueError(f"is {len(text)} characters long; the limit is {MAX_INPUT_CHARS}")

    def refuse(name: str) -> Any:
        raise ValueError(f"must be JSON text: {name} is not a JSON number")

    try:
        json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise ValueError(f"must be JSON text: {exc.msg} at column {exc.colno}") from exc
    return text


class TargetInputSettings(Protocol):
    """The parts of a target that say what it receives (``models.IntegrationTarget`` has them)."""

    @property
    def input(self) -> str | None: ...
    @property
    def input_path(self) -> str | None: ...
    @property
    def input_transformer(self) -> TransformerSettings | None: ...


class TransformerSettings(Protocol):
    """An input transformer's two fields."""

    @property
    def input_paths_map(self) -> Mapping[str, str]: ...
    @property
    def input_template(self) -> str: ...


def target_input(target: TargetInputSettings) -> TargetInput | None:
    """What ``target`` receives, compiled; None when it receives the event as it is."""
    transformer = target.input_transformer
    return compile_target_input(
        constant=target.input,
        input_path=target.input_path,
        transformer=None if transformer is None else (transformer.input_paths_map, transformer.input_template),
    )


def compile_target_input(
    *, constant: str | None, input_path: str | None, transformer: tuple[Mapping[str, str], str] | None
) -> TargetInput | None:
    """A target's input settings, validated; None when the event is sent as it is."""
    if constant is not None:
        return TargetInput(constant=check_constant_input(constant).encode())
    if input_path is not None:
        try:
            return TargetInput(path=parse_json_path(input_path))
        except ValueError as exc:
            raise InvalidTransformError("invalid inputPath", [FieldError("inputPath", str(exc))]) from exc
    if transformer is not None:
        return TargetInput(template=compile_template(*transformer))
    return None
