"""An ingest body read into events: one JSON object, a JSON array of objects, or NDJSON (one per line).

The router's HTTP API reads every ``POST /v1/events`` body with :func:`parse_events_stepwise`, a step at a
time so a large body never holds the event loop for long; :func:`parse_events` is the same work in one go.
Each item is read on its own, by the wire rules (:mod:`cxone_eventbridge.wire`: the strict decoder, the
encoding whose length the per-event limit counts, the event id rule), and every bad item is listed.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Generator
from typing import Any

from cxone_eventbridge.exceptions import IngestError
from cxone_eventbridge.wire import (
    DEFAULT_MAX_EVENTS_PER_REQUEST,
    MAX_EVENT_BYTES,
    MAX_NESTING_DEPTH,
    STRICT_DECODER,
    describe_json_type,
    encode_event,
    event_id_problem,
    json_value_problem,
    skip_space,
)

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq"})


def parse_events(
    body: bytes,
    *,
    content_type: str = "application/json",
    max_event_bytes: int = MAX_EVENT_BYTES,
    max_events: int = DEFAULT_MAX_EVENTS_PER_REQUEST,
) -> list[dict[str, Any]]:
    """The events of an ingest body: one JSON object, a JSON array of objects, or NDJSON (one per line).

    Raises ``IngestError``: 400 malformed JSON (naming the line of NDJSON; non-finite numbers, lone
    surrogates and nesting beyond :data:`MAX_NESTING_DEPTH` included), 422 items that are not objects or
    carry an unusable ``id`` (naming ``[index]`` or ``line N``), 413 an event over ``max_event_bytes`` or
    more than ``max_events`` events. Every bad item is listed, not only the first. The work is that of
    :func:`parse_events_stepwise`, done in one go.
    """
    steps = parse_events_stepwise(
        body, content_type=content_type, max_event_bytes=max_event_bytes, max_events=max_events
    )
    while True:
        try:
            next(steps)
        except StopIteration as done:
            events: list[dict[str, Any]] = done.value
            return events


# How much work one step of parse_events_stepwise does before it yields to its caller: this much JSON
# text, each item counting as at least _ITEM_STEP_CHARS (checking and encoding an item costs about as
# much as parsing a kilobyte), so a step takes a few milliseconds whatever the items' sizes.
PARSE_STEP_CHARS = 64 * 1024
_ITEM_STEP_CHARS = 1024
# An item's JSON text may be this many times the per-event limit (indentation, escapes) before it is
# refused unread: what bounds the time and memory that parsing one item can take.
ITEM_TEXT_FACTOR = 4
# Items are parsed from a slice of the body this long first, and from one as long as the item limit when
# they do not fit: a slice bounds the parser's work, and a short first slice keeps copying cheap.
_FIRST_WINDOW = 16 * 1024
# A parse error this close to a slice's cut end may be the cut itself rather than the item.
_CUT_MARGIN = 16


def parse_events_stepwise(
    body: bytes,
    *,
    content_type: str = "application/json",
    max_event_bytes: int = MAX_EVENT_BYTES,
    max_events: int = DEFAULT_MAX_EVENTS_PER_REQUEST,
    step_chars: int = PARSE_STEP_CHARS,
) -> Generator[None, None, list[dict[str, Any]]]:
    """:func:`parse_events` as a generator that yields after about every ``step_chars`` of JSON text.

    A caller on an event loop lets other work run at each yield (the router's ingest handler does), so
    a 16 MiB body never holds the loop for long. The limits apply while parsing, and each item is parsed
    on its own: the event count is refused as soon as it is exceeded, an item whose JSON text runs past
    ``ITEM_TEXT_FACTOR * max_event_bytes`` is refused unread, and items are kept only while no problem
    has been found. The events come back as the generator's return value.
    """
    text = yield from _decode_utf8(body, step_chars)
    if skip_space(text, 0) == len(text):
        raise IngestError(400, "empty_body", "the body is empty; send a JSON object, an array or NDJSON")
    reader = _BodyReader(text, max_event_bytes=max_event_bytes, max_events=max_events, step_chars=step_chars)
    if content_type in NDJSON_TYPES:
        collected = yield from reader.lines()
    else:
        try:
            collected = yield from reader.document()
        except _MalformedError as exc:
            if "\n" not in text.strip():
                raise IngestError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
            # Several lines that are not one document: NDJSON sent as application/json.
            collected = yield from reader.lines()
    return collected.events()


def _decode_utf8(body: bytes, step_chars: int) -> Generator[None, None, str]:
    """``body`` as text (strict UTF-8, an optional BOM dropped), decoded a step at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    start = 3 if body.startswith(codecs.BOM_UTF8) else 0
    parts: list[str] = []
    with memoryview(body) as view:
        for offset in range(start, max(len(body), start + 1), step_chars * 4):
            try:
                parts.append(decoder.decode(view[offset : offset + step_chars * 4], final=False))
            except UnicodeDecodeError as exc:
                at = offset + exc.start - len(decoder.getstate()[0])
                raise IngestError(
                    400, "malformed_json", f"the body is not UTF-8 text: {exc.reason} at byte {at}"
                ) from None
            yield
        try:
            parts.append(decoder.decode(b"", final=True))
        except UnicodeDecodeError as exc:
            raise IngestError(400, "malformed_json", f"the body is not UTF-8 text: {exc.reason} at its end") from None
    return "".join(parts)


class _MalformedError(ValueError):
    """JSON text that cannot be read at ``position`` (its message says why, where)."""


class _ItemTooLargeError(Exception):
    """An item whose JSON text runs past the item limit (so where it ends is unknown)."""


class _Collected:
    """The items read so far, checked as they come; problems by kind, raised in a fixed order at the end."""

    def __init__(self, text: str, *, max_event_bytes: int) -> None:
        self._text = text
        self._max_event_bytes = max_event_bytes
        self._items: list[dict[str, Any]] = []
        self.malformed: list[tuple[str, str]] = []
        self.not_objects: list[tuple[str, str]] = []
        self.too_large: list[tuple[str, str]] = []
        self.bad_ids: list[tuple[str, str]] = []
        self.count = 0

    def _clean(self) -> bool:
        return not (self.malformed or self.not_objects or self.too_large or self.bad_ids)

    def add(self, where: str, item: object, start: int, end: int) -> None:
        """Check one item read from ``text[start:end]``; keep it while the request can still be accepted."""
        self.count += 1
        if type(item) is not dict:
            self.not_objects.append((where, f"is {describe_json_type(item)}, not a JSON object"))
            return
        text = self._text
        # Deeper nesting needs at least that many brackets: only then is the item walked to measure it.
        if text.count("{", start, end) + text.count("[", start, end) > MAX_NESTING_DEPTH and (
            problem := json_value_problem(item)
        ):
            self.malformed.append((where, f"not valid JSON: {problem}"))
            return
        try:
            size = len(encode_event(item))
        except ValueError:
            self.malformed.append((where, f"not valid JSON: {json_value_problem(item) or 'cannot be encoded'}"))
            return
        problems = False
        if size > self._max_event_bytes:
            self.too_large.append((where, f"is {size} bytes; the limit is {self._max_event_bytes}"))
            problems = True
        if (problem := event_id_problem(item.get("id"))) is not None:
            self.bad_ids.append((f"{where}.id", problem))
            problems = True
        if not problems and self._clean():
            self._items.append(item)
        else:
            self._items.clear()  # the request is refused whole: nothing needs keeping any more

    def events(self) -> list[dict[str, Any]]:
        """The events, or IngestError listing every problem of the first kind found (in a fixed order)."""
        if self.malformed:
            raise IngestError(
                400, "malformed_json", f"{len(self.malformed)} item(s) are not valid JSON", self.malformed
            )
        if self.count == 0:
            raise IngestError(422, "not_object", "the request holds no events")
        if self.not_objects:
            raise IngestError(
                422, "not_object", f"{len(self.not_objects)} item(s) are not JSON objects", self.not_objects
            )
        if self.too_large:
            raise IngestError(413, "event_too_large", f"{len(self.too_large)} event(s) are too large", self.too_large)
        if self.bad_ids:
            raise IngestError(422, "invalid_event", f"{len(self.bad_ids)} event(s) have an unusable id", self.bad_ids)
        return self._items


class _BodyReader:
    """Reads the items of an ingest body one at a time, as a JSON document or as NDJSON lines."""

    def __init__(self, text: str, *, max_event_bytes: int, max_events: int, step_chars: int) -> None:
        self.text = text
        self.max_event_bytes = max_event_bytes
        self.max_events = max_events
        self.step_chars = step_chars
        self.item_chars = ITEM_TEXT_FACTOR * max_event_bytes

    def _too_many(self) -> IngestError:
        return IngestError(
            413, "too_many_events", f"more than {self.max_events} events in one request; the limit is {self.max_events}"
        )

    def _too_large(self, where: str) -> IngestError:
        return IngestError(
            413,
            "event_too_large",
            "an event is too large",
            [
                (
                    where,
                    f"is over {self.item_chars} characters of JSON text; an event is at most "
                    f"{self.max_event_bytes} bytes as compact JSON",
                )
            ],
        )

    def read_item(self, position: int) -> tuple[object, int]:
        """The JSON value starting at ``position`` and where it ends; _MalformedError or _ItemTooLargeError."""
        text = self.text
        window = _FIRST_WINDOW
        while True:
            stop = min(len(text), position + window)
            cut = stop < len(text)
            piece = text if position == 0 and not cut else text[position:stop]
            try:
                value, end = STRICT_DECODER.raw_decode(piece)
            except RecursionError:
                too_deep = f"nested deeper than {MAX_NESTING_DEPTH} levels"
                raise _MalformedError(_where(too_deep, text, position)) from None
            except json.JSONDecodeError as exc:
                if not (cut and (exc.msg.startswith("Unterminated string") or exc.pos >= len(piece) - _CUT_MARGIN)):
                    raise _MalformedError(_where(exc.msg, text, position + exc.pos)) from None
            except ValueError as exc:  # NaN, 1e999, an integer beyond the digit limit
                raise _MalformedError(_where(str(exc), text, position)) from None
            else:
                if not (cut and end == len(piece)):  # a number may go on past the cut
                    return value, position + end
            if window >= self.item_chars:
                raise _ItemTooLargeError
            window = self.item_chars

    def document(self) -> Generator[None, None, _Collected]:
        """One JSON object, or an array of items read one by one."""
        text = self.text
        collected = _Collected(text, max_event_bytes=self.max_event_bytes)
        position = skip_space(text, 0)
        if text[position] != "[":
            try:
                item, end = self.read_item(position)
            except _ItemTooLargeError:
                raise self._too_large("[0]") from None
            if skip_space(text, end) != len(text):
                raise _MalformedError(_where("Extra data", text, skip_space(text, end)))
            if type(item) is not dict:
                raise IngestError(
                    422,
                    "not_object",
                    f"the body is {describe_json_type(item)}; send a JSON object, an array of objects or NDJSON",
                )
            collected.add("[0]", item, position, end)
            return collected
        position = skip_space(text, position + 1)
        budget = self.step_chars
        index = 0
        if text.startswith("]", position):
            position += 1
        else:
            while True:
                if index >= self.max_events:
                    raise self._too_many()
                try:
                    item, end = self.read_item(position)
                except _ItemTooLargeError:
                    raise self._too_large(f"[{index}]") from None
                collected.add(f"[{index}]", item, position, end)
                index += 1
                budget -= max(end - position, _ITEM_STEP_CHARS)
                position = skip_space(text, end)
                if budget <= 0:
                    yield
                    budget = self.step_chars
                if text.startswith(",", position):
                    position = skip_space(text, position + 1)
                    continue
                if text.startswith("]", position):
                    position += 1
                    break
                raise _MalformedError(_where("Expecting ',' delimiter", text, position))
        if skip_space(text, position) != len(text):
            raise _MalformedError(_where("Extra data", text, skip_space(text, position)))
        return collected

    def lines(self) -> Generator[None, None, _Collected]:
        """NDJSON: one item per non-blank line, each line read on its own."""
        text = self.text
        collected = _Collected(text, max_event_bytes=self.max_event_bytes)
        position, number = 0, 1
        budget = self.step_chars
        while True:
            start = skip_space(text, position)  # blank lines, in one step however many
            number += text.count("\n", position, start)
            if start == len(text):
                return collected
            end = text.find("\n", start)
            if end == -1:
                end = len(text)
            if collected.count >= self.max_events:
                raise self._too_many()
            where = f"line {number}"
            if end - start > self.item_chars:
                collected.count += 1
                collected.too_large.append(
                    (
                        where,
                        f"is over {self.item_chars} characters of JSON text; an event is at most "
                        f"{self.max_event_bytes} bytes as compact JSON",
                    )
                )
            else:
                try:
                    item, stop = self.read_item_of_line(start, end)
                except _MalformedError as exc:
                    collected.count += 1
                    collected.malformed.append((where, f"not valid JSON: {exc}"))
                else:
                    collected.add(where, item, start, stop)
            budget -= max(end - start, _ITEM_STEP_CHARS)
            position = end
            if budget <= 0:
                yield
                budget = self.step_chars

    def read_item_of_line(self, start: int, end: int) -> tuple[object, int]:
        """The one JSON value of the line ``text[start:end]`` (positions in messages count from the line)."""
        line = self.text[start:end]
        try:
            value, stop = STRICT_DECODER.raw_decode(line)
        except RecursionError:
            raise _MalformedError(f"nested deeper than {MAX_NESTING_DEPTH} levels") from None
        except ValueError as exc:
            raise _MalformedError(str(exc)) from None
        if skip_space(line, stop) != len(line):
            raise _MalformedError(str(json.JSONDecodeError("Extra data", line, skip_space(line, stop))))
        return value, start + stop


def _where(message: str, text: str, position: int) -> str:
    """A parse error's message with its line, column and character, counted in the whole body."""
    return str(json.JSONDecodeError(message, text, position))
