"""The JSON wire rules every part of the package agrees on: numbers, event encoding, ids, sizes, parsing.

One home for rules that models, matching, the router's ingest, the sandbox and the CLI each need:

- A JSON number is an ``int`` or a ``float`` and never a ``bool`` (which Python counts as an int):
  :func:`is_json_number`. Whether it is *finite* is a separate question, :func:`is_finite_number`
  (integers always are, even beyond a float's range; NaN and the infinities are not).
- JSON text is read with :func:`loads`, which refuses ``NaN`` and ``Infinity``: they are not JSON, and
  an event holding one could not be re-serialised for the queue.
- An event is queued and delivered as :func:`encode_event` (compact UTF-8 JSON); its length is what the
  per-event limit :data:`MAX_EVENT_BYTES` counts. An event's own ``id``, when present, is its
  deduplication key and must pass :func:`event_id_problem`.
- :func:`parse_events` reads an ingest body (one object, an array or NDJSON) the way the router's HTTP
  API does, listing every bad item.
"""

from __future__ import annotations

import json
import math
from typing import Any

from cxone_eventbridge.exceptions import IngestError

# An event's JSON is at most 256 KB (EventBridge's own limit): ingest answers 413 above it, and
# `cxeb router send` checks it locally first.
MAX_EVENT_BYTES = 256 * 1024
MAX_EVENT_ID_CHARS = 256
DEFAULT_MAX_EVENTS_PER_REQUEST = 10_000
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq"})


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


def loads(text: bytes | str) -> Any:
    """JSON text as Python values; ValueError for malformed text and for ``NaN``/``Infinity``, which are not JSON."""
    return json.loads(text, parse_constant=_reject_constant)


def encode_event(event: dict[str, Any]) -> bytes:
    """The body an event is queued and delivered with: compact JSON, UTF-8; ValueError for NaN or infinity.

    Its length is what the per-event size limit counts, at ingest over HTTP and in the library alike.
    """
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def event_id_problem(event_id: object) -> str | None:
    """Why an event's own ``id`` cannot be its deduplication key, or None when it can (or is absent)."""
    if event_id is None:
        return None
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_EVENT_ID_CHARS:
        return f"must be a non-empty string of at most {MAX_EVENT_ID_CHARS} characters"
    return None


def parse_events(
    body: bytes,
    *,
    content_type: str = "application/json",
    max_event_bytes: int = MAX_EVENT_BYTES,
    max_events: int = DEFAULT_MAX_EVENTS_PER_REQUEST,
) -> list[dict[str, Any]]:
    """The events of an ingest body: one JSON object, a JSON array of objects, or NDJSON (one per line).

    Raises ``IngestError``: 400 malformed JSON (naming the line of NDJSON), 422 items that are not objects
    or carry an unusable ``id`` (naming ``[index]`` or ``line N``), 413 an event over ``max_event_bytes``
    or more than ``max_events`` events. Every bad item is listed, not only the first.
    """
    if not body.strip():
        raise IngestError(400, "empty_body", "the body is empty; send a JSON object, an array or NDJSON")
    ndjson = content_type in NDJSON_TYPES
    items: list[tuple[str, Any]] = []
    if not ndjson:
        try:
            document = loads(body)
        except ValueError as exc:
            if b"\n" not in body.strip():
                raise IngestError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
            ndjson = True  # several lines that are not one document: NDJSON sent as application/json
        else:
            if isinstance(document, dict):
                items = [("[0]", document)]
            elif isinstance(document, list):
                items = [(f"[{n}]", item) for n, item in enumerate(document)]
            else:
                raise IngestError(
                    422,
                    "not_object",
                    f"the body is {describe_json_type(document)}; send a JSON object, an array of objects or NDJSON",
                )
    if ndjson:
        malformed: list[tuple[str, str]] = []
        for number, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append((f"line {number}", loads(line)))
            except ValueError as exc:
                malformed.append((f"line {number}", f"not valid JSON: {exc}"))
        if malformed:
            raise IngestError(400, "malformed_json", f"{len(malformed)} line(s) are not valid JSON", malformed)
    if not items:
        raise IngestError(422, "not_object", "the request holds no events")
    if len(items) > max_events:
        raise IngestError(413, "too_many_events", f"{len(items)} events in one request; the limit is {max_events}")
    not_objects = [
        (where, f"is {describe_json_type(item)}, not a JSON object")
        for where, item in items
        if not isinstance(item, dict)
    ]
    if not_objects:
        raise IngestError(422, "not_object", f"{len(not_objects)} item(s) are not JSON objects", not_objects)
    too_large: list[tuple[str, str]] = []
    bad_ids: list[tuple[str, str]] = []
    for where, item in items:
        # NaN and infinity were refused by loads, so every item encodes.
        if (size := len(encode_event(item))) > max_event_bytes:
            too_large.append((where, f"is {size} bytes; the limit is {max_event_bytes}"))
        if (problem := event_id_problem(item.get("id"))) is not None:
            bad_ids.append((f"{where}.id", problem))
    if too_large:
        raise IngestError(413, "event_too_large", f"{len(too_large)} event(s) are too large", too_large)
    if bad_ids:
        raise IngestError(422, "invalid_event", f"{len(bad_ids)} event(s) have an unusable id", bad_ids)
    return [item for _, item in items]
