"""Sending a JSON-lines stream of events to a router (``cxeb router send``), line by line accounted for.

- Each line is checked first as the router's ingest would check it (``wire``: valid JSON, an object,
  the size limit, a usable ``id``) plus its own ``priority`` field (an integer from 0 to 9, or absent:
  then the caller's default applies). A bad line is reported by its number and skipped.
- Good lines go in NDJSON batches, one batch per priority (ingest takes one priority per request), each
  event with an ``id`` so that a retried POST never duplicates it.
- When the router refuses a batch for some of its items (400, 413, 422 naming ``line N``), those are
  reported by their file line numbers and the rest is sent again; any other refusal of a batch marks
  all its lines rejected and the stream goes on. An unreachable router or a refused ingest key ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from cxone_eventbridge.exceptions import RouterRefusedError
from cxone_eventbridge.router.api_client import RouterClient, encode_for_ingest
from cxone_eventbridge.router.queue import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from cxone_eventbridge.wire import MAX_EVENT_BYTES, encode_event, event_id_problem, loads

# Statuses with which the router refuses a request whole because of some of its items, naming them.
ITEM_REFUSALS = frozenset({400, 413, 422})


@dataclass
class SendSummary:
    """What a send did, line by line: accepted, rejected here (before sending) or by the router."""

    lines: int = 0
    sent: int = 0
    accepted: int = 0
    rejected_locally: list[tuple[int, str]] = field(default_factory=list)
    rejected_by_router: list[tuple[int, str]] = field(default_factory=list)
    by_priority: dict[int, int] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return len(self.rejected_locally) + len(self.rejected_by_router)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "accepted": self.accepted,
            "byPriority": {str(p): n for p, n in sorted(self.by_priority.items())},
            "rejectedLocally": [{"line": n, "message": m} for n, m in self.rejected_locally],
            "rejectedByRouter": [{"line": n, "message": m} for n, m in self.rejected_by_router],
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
        }


def check_line(
    text: str, *, default_priority: int, max_event_bytes: int = MAX_EVENT_BYTES
) -> tuple[dict[str, Any], int]:
    """One JSON line as an event and the priority it goes at; ValueError says what is wrong (as the router would)."""
    try:
        event = loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    size = len(encode_event(event))
    if size > max_event_bytes:
        raise ValueError(f"the event is {size} bytes; the limit is {max_event_bytes}")
    if (problem := event_id_problem(event.get("id"))) is not None:
        raise ValueError(f"id {problem}")
    priority = event.get("priority", default_priority)
    if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}")
    return event, priority


@dataclass
class _Batch:
    priority: int
    lines: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0


class EventSender:
    """Sends one stream; ``on_rejected(where, message)`` (``line 7``, ``lines 1-500``) and ``on_progress(summary)``
    observe it."""

    def __init__(
        self,
        client: RouterClient,
        *,
        default_priority: int = DEFAULT_PRIORITY,
        batch_size: int = 500,
        max_batch_bytes: int = 4 << 20,
        on_rejected: Callable[[str, str], None] | None = None,
        on_progress: Callable[[SendSummary], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._client = client
        self._default_priority = default_priority
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._on_rejected = on_rejected
        self._on_progress = on_progress
        self._clock = clock
        self.summary = SendSummary()

    def count_retry(self, _notice: object) -> None:
        """A ``RouterClient`` ``on_retry`` observer: count the retried POSTs in the summary."""
        self.summary.retries += 1

    async def send(self, stream: TextIO) -> SendSummary:
        """Check, batch and send every line of ``stream``; the summary of what became of each."""
        started = self._clock()
        pending: dict[int, _Batch] = {}
        for number, event, priority in self._read(stream):
            line = encode_for_ingest(event)
            batch = pending.setdefault(priority, _Batch(priority))
            if batch.lines and (
                len(batch.lines) >= self._batch_size or batch.size + len(line) + 1 > self._max_batch_bytes
            ):
                await self._post(batch)
                batch = pending[priority] = _Batch(priority)
            batch.lines.append((number, line))
            batch.size += len(line) + 1
        for batch in pending.values():
            if batch.lines:
                await self._post(batch)
        self.summary.seconds = self._clock() - started
        return self.summary

    def _read(self, stream: TextIO) -> Iterator[tuple[int, dict[str, Any], int]]:
        for number, raw in enumerate(stream, start=1):
            text = raw.strip()
            if not text:
                continue
            self.summary.lines += 1
            try:
                event, priority = check_line(text, default_priority=self._default_priority)
            except ValueError as exc:
                self.summary.rejected_locally.append((number, str(exc)))
                self._rejected(f"line {number}", f"{exc}; skipped")
                continue
            yield number, event, priority

    async def _post(self, batch: _Batch) -> None:
        lines = batch.lines
        self.summary.sent += len(lines)
        try:
            ids = await self._client.ingest_encoded([line for _, line in lines], priority=batch.priority)
        except RouterRefusedError as exc:
            if exc.status == 401:
                raise  # a wrong or missing ingest key refuses every batch alike: stop at the first
            bad = _bad_items(exc, lines) if exc.status in ITEM_REFUSALS else {}
            if not bad:
                self.summary.rejected_by_router.extend((number, exc.message) for number, _ in lines)
                self._rejected(f"lines {lines[0][0]}-{lines[-1][0]}", str(exc))
                return
            for number, message in sorted(bad.items()):
                self.summary.rejected_by_router.append((number, message))
                self._rejected(f"line {number}", f"rejected by the router: {message}")
            rest = [(n, line) for n, line in lines if n not in bad]
            if rest:
                self.summary.sent -= len(rest)
                await self._post(_Batch(batch.priority, rest, sum(len(line) + 1 for _, line in rest)))
            return
        self.summary.accepted += len(ids)
        self.summary.by_priority[batch.priority] = self.summary.by_priority.get(batch.priority, 0) + len(ids)
        if self._on_progress is not None:
            self._on_progress(self.summary)

    def _rejected(self, where: str, message: str) -> None:
        if self._on_rejected is not None:
            self._on_rejected(where, message)


def _bad_items(error: RouterRefusedError, lines: list[tuple[int, bytes]]) -> dict[int, str]:
    """The router's field errors (``line N`` of the batch) as file line numbers."""
    bad: dict[int, str] = {}
    for item in error.errors:
        if item.field.startswith("line "):
            index_text = item.field.removeprefix("line ").split(".", 1)[0]
            if index_text.isdigit() and 1 <= int(index_text) <= len(lines):
                bad[lines[int(index_text) - 1][0]] = item.message
    return bad
