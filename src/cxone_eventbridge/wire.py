"""The JSON wire rules every part of the package agrees on: numbers, event encoding, ids, sizes, reading JSON.

One home for rules that models, matching, the router's ingest, the sandbox and the CLI each need:

- A JSON number is an ``int`` or a ``float`` and never a ``bool`` (which Python counts as an int):
  :func:`is_json_number`. Whether it is *finite* is a separate question, :func:`is_finite_number`
  (integers always are, even beyond a float's range; NaN and the infinities are not).
- JSON text is read with :func:`loads`, which refuses ``NaN`` and ``Infinity``: they are not JSON, and
  an event holding one could not be re-serialised for the queue.
- An event is queued and delivered as :func:`encode_event` (compact UTF-8 JSON); its length is what the
  per-event limit :data:`MAX_EVENT_BYTES` counts. An event's own ``id``, when present, is its
  deduplication key and must pass :func:`event_id_problem`.
- Readers that take a body item by item (the router's ingest, :mod:`cxone_eventbridge.router.ingest_body`)
  use :data:`STRICT_DECODER` and :func:`skip_space`, so an item is read by the same rules as :func:`loads`.
- Times in the router's JSON answers are ISO-8601 UTC strings, :func:`iso_time` (never Unix seconds).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

# An event's JSON is at most 256 KB (EventBridge's own limit): ingest answers 413 above it, and
# `cxeb router send` checks it locally first.
MAX_EVENT_BYTES = 256 * 1024
MAX_EVENT_ID_CHARS = 256
DEFAULT_MAX_EVENTS_PER_REQUEST = 10_000
# Objects and arrays nest at most this deep in anything read as JSON (as System.Text.Json's default): far
# below the recursion limit of the C parser and encoder, so depth is refused as input, never a crash.
MAX_NESTING_DEPTH = 64


def is_json_number(value: object) -> bool:
    """A JSON number: ``int`` or ``float`` but never ``bool``; finite or not (see ``is_finite_number``)."""
    kind = type(value)
    return kind is int or kind is float


def is_finite_number(value: object) -> bool:
    """A JSON number that is neither NaN nor an infinity; integers always are, even beyond a float's range."""
    kind = type(value)
    # math.isfinite would raise OverflowError on an int beyond a float's range, so ints are answered first.
    return kind is int or (kind is float and math.isfinite(value))  # type: ignore[arg-type]


def describe_json_type(value: object) -> str:
    """What kind of JSON value ``value`` is, for messages ("a string", "an array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 would read as infinity, which JSON cannot carry back out: refuse it where it is read.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is beyond the range of a JSON number (a finite double)")
    return value


# The decoder behind loads: no NaN or Infinity constants, no float that overflows to infinity. Its
# raw_decode reads one value at a position, for readers that parse a body item by item.
STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_value_problem(value: object, *, max_depth: int = MAX_NESTING_DEPTH) -> str | None:
    """Why parsed JSON cannot be carried on as text, or None: nesting beyond ``max_depth``, a lone surrogate.

    JSON's grammar lets ``"\\ud800"`` through, but such a string is not Unicode text: it could not be
    encoded as UTF-8 for the queue or a receiver. Walked with an explicit stack, so any depth is safe.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                return "holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
        elif isinstance(node, dict | list):
            if depth >= max_depth:
                return f"is nested deeper than {max_depth} levels"
            if isinstance(node, dict):
                for key, child in node.items():
                    stack.append((key, depth))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in node)
    return None


def loads(text: bytes | str) -> Any:
    """JSON text as Python values; ValueError for anything that is not JSON the package can carry on.

    Refused: malformed text, invalid UTF-8, ``NaN``/``Infinity`` and numbers that overflow to them
    (``1e999``), integers beyond Python's digit limit, nesting beyond :data:`MAX_NESTING_DEPTH` and lone
    surrogates. Every refusal is a ValueError, so that a caller answers 400, never 500.
    """
    if isinstance(text, bytes):
        # Strict UTF-8: json.loads would let encoded surrogates through ("surrogatepass").
        text = text.decode("utf-8-sig")
    try:
        value, end = STRICT_DECODER.raw_decode(text, skip_space(text, 0))
    except RecursionError:
        raise ValueError(f"the JSON is nested deeper than {MAX_NESTING_DEPTH} levels") from None
    if skip_space(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    if (problem := json_value_problem(value)) is not None:
        raise ValueError(f"the JSON {problem}")
    return value


_SPACE = re.compile(r"[ \t\n\r]*")


def skip_space(text: str, position: int) -> int:
    """The position of the first character at or after ``position`` that is not JSON white space."""
    match = _SPACE.match(text, position)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def encode_event(event: dict[str, Any]) -> bytes:
    """The body an event is queued and delivered with: compact JSON, UTF-8.

    ValueError for NaN or infinity, for a lone surrogate (UnicodeEncodeError) and for nesting too deep to
    encode.

    Its length is what the per-event size limit counts, at ingest over HTTP and in the library alike.
    """
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except RecursionError:
        raise ValueError("the event is nested too deeply to encode as JSON") from None


def event_id_problem(event_id: object) -> str | None:
    """Why an event's own ``id`` cannot be its deduplication key, or None when it can (or is absent)."""
    if event_id is None:
        return None
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_EVENT_ID_CHARS:
        return f"must be a non-empty string of at most {MAX_EVENT_ID_CHARS} characters"
    return None


def iso_time(unix: float | None) -> str | None:
    """A time as the router's HTTP API writes it in JSON: ISO-8601 UTC with milliseconds (``...T12:00:00.250Z``)."""
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
