"""The audit log writer: appends hash-chained lines, batching delivery outcomes, rotating, repairing a torn tail.

Several writers (threads or processes) may share one file: each append happens under an exclusive
``fcntl.flock`` on the lock file, and re-reads the chain's tail when another writer moved it, so the
chain stays linear. A writer that crashed mid-line leaves a torn tail; the next writer truncates it
(under the lock), writes a ``recovery`` line saying how many bytes it dropped, and continues after the
last complete line. When the file reaches ``max_bytes`` it is renamed ``<path>.<n>`` and a new file
continues the chain. Nothing is ever deleted.

Delivery outcomes arrive thousands per second; written one by one, each costs a lock, a hash and a write
(about 70 us here, against 24 us in batches of 100). Inside a running event loop, ``observe`` therefore
collects them and writes them together ``batch_delay_s`` later (or at once when ``max_batch`` are
waiting); control-plane changes flush what is waiting and are written at once, so lines stay in order.
``flush()`` and ``close()`` write what is waiting; a killed process loses at most ``batch_delay_s`` of
delivery lines (the queue, not the audit log, is what makes deliveries durable).

Nothing is lost silently. A write that fails (a full disk) is undone to the last whole line, its records
are counted as lost (``health()``: the router's metrics and ``/readyz`` show it) and logged as an error
when writing starts failing; when writing works again, a ``gap`` record says how many records were lost,
when and why, so that ``verify`` reports it. A log file deleted or replaced while this writer uses it is
noticed at the next append: the chain continues from this writer's last line, and a ``continuation``
record names that line and what was found instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cxone_eventbridge.defaults import DEFAULT_AUDIT_LOG
from cxone_eventbridge.exceptions import AuditLineError
from cxone_eventbridge.observe.audit.codec import (
    GENESIS,
    ParsedLine,
    encode_line,
    has_hash_suffix,
    hash_of_encoded,
    line_hash,
    parse_line,
)
from cxone_eventbridge.observe.audit.files import lock_path, next_rotated_file, rotated_files
from cxone_eventbridge.observe.audit.redact import redact
from cxone_eventbridge.observe.events import (
    DeliveryDeadLettered,
    DeliverySucceeded,
    ObservedEvent,
    TargetChanged,
)
from cxone_eventbridge.observe.status import StatusTracker

log = logging.getLogger(__name__)

DEFAULT_AUDIT_PATH = DEFAULT_AUDIT_LOG
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BATCH_DELAY_S = 0.05
DEFAULT_MAX_BATCH = 256

_TAIL_CHUNK = 64 * 1024


def _read_tail(fd: int, size: int) -> tuple[bytes | None, int]:
    """The last complete line of the file (without newline) and the offset just after it."""
    buffer = b""
    position = size
    while position > 0:
        start = max(0, position - _TAIL_CHUNK)
        buffer = os.pread(fd, position - start, start) + buffer
        position = start
        last_newline = buffer.rfind(b"\n")
        if last_newline < 0:
            continue
        previous = buffer.rfind(b"\n", 0, last_newline)
        if previous >= 0 or position == 0:
            return buffer[previous + 1 : last_newline], position + last_newline + 1
    return None, 0


@dataclass(frozen=True, slots=True)
class AuditHealth:
    """Whether the audit log is writing, and what it has lost since it was opened."""

    failing: bool  # the last write failed
    failed_writes: int  # writes that failed
    records_lost: int  # records in them (counted once each)
    last_error: str | None  # why the last failing write failed


@dataclass(slots=True)
class _Outage:
    """Writes failing since ``first_at``: the records lost so far, for the gap record written on resuming."""

    first_at: float
    last_at: float
    error: str
    writes: int = 0
    records: int = 0


@dataclass(slots=True)
class _ChainHead:
    """Where the chain ends: the file it ends in (inode, size) and the last line's seq and hash."""

    inode: int
    size: int
    seq: int
    hash: str


class AuditLog:
    """Appends hash-chained JSON lines; use ``observe`` as an ``ObserverBus`` observer.

    Thread-safe and multi-process safe. ``clock`` returns epoch seconds (injected for tests).
    ``fsync`` makes each append durable before returning (slower; see docs/router.md for numbers).
    ``status`` is the tracker whose per-target counts each delivery line snapshots; pass the one the
    router's status view uses so they are counted once (the audit log folds every record it observes
    into it, which the tracker counts once whichever of the two sees it first). Without one the audit
    log keeps its own.
    """

    def __init__(
        self,
        path: Path | str = DEFAULT_AUDIT_PATH,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fsync: bool = False,
        clock: Callable[[], float] | None = None,
        batch_delay_s: float = DEFAULT_BATCH_DELAY_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        status: StatusTracker | None = None,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        self.batch_delay_s = batch_delay_s
        self.max_batch = max(1, max_batch)
        self._pending: list[Mapping[str, Any]] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._clock = clock
        self._status = status if status is not None else StatusTracker()
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._head: _ChainHead | None = None
        self._dropped_bytes = 0
        self._outage: _Outage | None = None  # writes failing since, and what they lost (not yet recorded)
        self._failed_writes = 0
        self._records_lost = 0
        self._last_error: str | None = None
        # The last line this writer wrote or read (seq, hash): a file found not to continue it was
        # deleted or replaced meanwhile.
        self._known: tuple[int, str] | None = None
        self._continuation: dict[str, Any] | None = None  # the record saying so, written with the next append

    def health(self) -> AuditHealth:
        """Whether writes fail now, and the failed writes and lost records since this log was opened."""
        with self._thread_lock:
            return AuditHealth(
                failing=self._outage is not None,
                failed_writes=self._failed_writes,
                records_lost=self._records_lost,
                last_error=self._last_error,
            )

    # -- observer ---------------------------------------------------------------------------------

    def observe(self, event: ObservedEvent) -> None:
        """Write control-plane changes and delivery outcomes; every record also feeds the counts."""
        self._status.observe(event)
        if isinstance(event, TargetChanged):
            self.flush()
            self.record(
                event.action,
                target=event.target,
                target_id=event.target_id,
                details=event.details,
                at=event.at,
            )
        elif isinstance(event, DeliverySucceeded | DeliveryDeadLettered):
            failure: dict[str, Any] = {}
            if isinstance(event, DeliveryDeadLettered):
                failure = {"reason": event.reason, "last_status": event.last_status}
            counts = self._status.target(event.target)
            self._append_delivery(
                {
                    "kind": "delivery",
                    "timestamp": self._timestamp(event.at),
                    "target": event.target,
                    "success": not failure,
                    "retries": max(0, event.attempts - 1),
                    "event_id": event.event_id,
                    "delivery_id": event.delivery_id,
                    **failure,
                    # The tutorial's keys (success/failure/retries), which SIEM parsers of the old log expect.
                    "metrics_snapshot": {
                        "success": counts.delivered,
                        "failure": counts.dead_lettered,
                        "retries": counts.retries,
                    },
                }
            )

    __call__ = observe

    def _append_delivery(self, record: Mapping[str, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a thread): nothing will flush later, write now
            self.append(record)
            return
        with self._pending_lock:
            self._pending.append(record)
            full = len(self._pending) >= self.max_batch
            schedule = not full and not self._flush_scheduled
            if schedule:
                self._flush_scheduled = True
        if full:
            self.flush()
        elif schedule:
            loop.call_later(self.batch_delay_s, self.flush)

    def flush(self) -> None:
        """Write the delivery lines that are waiting for their batch."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
            self._flush_scheduled = False
        self.append_many(pending)

    def record(self, action: str, *, at: float | None = None, **fields: Any) -> None:
        """Write one control-plane change (``create``, ``update``, ``delete``, ``test``, ``apply``, ...)."""
        self.append({"kind": "control", "timestamp": self._timestamp(at), "action": action, **fields})

    def _timestamp(self, at: float | None) -> str:
        if at is None:
            at = self._clock() if self._clock is not None else datetime.now(UTC).timestamp()
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    # -- appending --------------------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (redacted) as the next line of the chain."""
        self.append_many([record])

    def append_many(self, records: list[Mapping[str, Any]]) -> None:
        """Append several records under one lock acquisition (one write).

        Never raises for a failed write (the log is an observer): see the module's docstring.
        """
        if not records:
            return
        clean = [redact(r) for r in records]
        with self._thread_lock:
            try:
                with self._exclusive():
                    self._write(clean)
            except OSError as exc:
                self._failed(len(clean), exc)

    def _write(self, clean: list[Mapping[str, Any]]) -> None:
        head = self._locate_head()
        # What the chain must say before these records: a torn tail dropped, a gap, a replaced file.
        preface: list[Mapping[str, Any]] = []
        if self._dropped_bytes:
            preface.append(
                {"kind": "recovery", "timestamp": self._timestamp(None), "dropped_bytes": self._dropped_bytes}
            )
        if self._continuation is not None:
            preface.append(self._continuation)
        if self._outage is not None:
            outage = self._outage
            preface.append(
                {
                    "kind": "gap",
                    "timestamp": self._timestamp(None),
                    "records_lost": outage.records,
                    "failed_writes": outage.writes,
                    "first_failure": self._timestamp(outage.first_at),
                    "last_failure": self._timestamp(outage.last_at),
                    "error": outage.error,
                }
            )
        data = bytearray()
        seq, prev = head.seq, head.hash
        for record in [*preface, *clean]:
            seq += 1
            line = encode_line(record, seq=seq, prev=prev)
            prev = hash_of_encoded(line)
            data += line
        assert self._fd is not None
        try:
            written = 0
            while written < len(data):  # a full disk may take part of a write before refusing the rest
                written += os.write(self._fd, data[written:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # Undo the part that was written: the file keeps ending with a whole line of the chain.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, head.size)
            raise
        if self._outage is not None:
            log.warning(
                "audit log %s: writing again; %d record(s) were lost in %d failed write(s), recorded as a gap "
                "at seq %d",
                self.path,
                self._outage.records,
                self._outage.writes,
                head.seq + len(preface),
            )
        self._dropped_bytes, self._continuation, self._outage = 0, None, None
        head.seq, head.hash, head.size = seq, prev, head.size + len(data)
        self._known = (seq, prev)
        if head.size >= self.max_bytes:
            self._rotate()

    def _failed(self, records: int, exc: OSError) -> None:
        now = self._clock() if self._clock is not None else datetime.now(UTC).timestamp()
        error = exc.strerror or type(exc).__name__
        if self._outage is None:
            log.error(
                "audit log %s: cannot write (%s): audit records are being lost until writing works again; "
                "they are counted (cxeb_audit_records_lost_total), /readyz reports it, and the gap will be "
                "recorded in the chain",
                self.path,
                error,
            )
            self._outage = _Outage(first_at=now, last_at=now, error=error)
        self._outage.last_at = now
        self._outage.writes += 1
        self._outage.records += records
        self._failed_writes += 1
        self._records_lost += records
        self._last_error = error
        # The next append finds the file's state afresh (its size may not be what this writer thinks).
        self._head = None

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._lock_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _locate_head(self) -> _ChainHead:
        """Open the live file if needed and find the chain's end; cheap when nobody else wrote."""
        try:
            live = os.stat(self.path)
        except FileNotFoundError:
            live = None
        if self._fd is not None and (live is None or live.st_ino != os.fstat(self._fd).st_ino):
            os.close(self._fd)  # rotated (or removed) by another writer
            self._fd, self._head = None, None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._head = None
        stat = os.fstat(self._fd)
        head = self._head
        if head is not None and head.inode == stat.st_ino and head.size == stat.st_size:
            return head
        head = self._read_head(stat.st_ino, stat.st_size)
        known = self._known
        if known is not None and (head.seq < known[0] or (head.seq == known[0] and head.hash != known[1])):
            head = self._continue_replaced(head, known)
        self._known = (head.seq, head.hash)
        self._head = head
        return head

    def _continue_replaced(self, found: _ChainHead, known: tuple[int, str]) -> _ChainHead:
        """The file no longer continues this writer's chain: it was deleted or replaced. Continue from ours."""
        seq, digest = known
        log.error(
            "audit log %s was deleted or replaced while in use: it ends at seq %d where this writer's last line "
            "was seq %d; the chain continues from that line, and a continuation record says so",
            self.path,
            found.seq,
            seq,
        )
        if self._continuation is None:  # a failed write may have prepared it already: it names the first head
            self._continuation = {
                "kind": "continuation",
                "timestamp": self._timestamp(None),
                "previous_seq": seq,
                "previous_hash": digest,
                "found_seq": found.seq,
                "found_hash": found.hash,
            }
        return _ChainHead(inode=found.inode, size=found.size, seq=seq, hash=digest)

    def _read_head(self, inode: int, size: int) -> _ChainHead:
        read_fd = os.open(self.path, os.O_RDONLY)
        try:
            line, complete_end = _read_tail(read_fd, size)
            torn = os.pread(read_fd, size - complete_end, complete_end) if complete_end < size else b""
        finally:
            os.close(read_fd)
        head = self._head_from(line, inode, complete_end)
        if torn:
            assert self._fd is not None
            try:
                parsed = parse_line(torn)
            except AuditLineError:
                parsed = None
            if parsed is not None and parsed.prev == head.hash and parsed.seq == head.seq + 1:
                # Only the newline was lost: the record is whole, so keep it.
                os.write(self._fd, b"\n")
                return _ChainHead(inode=inode, size=size + 1, seq=parsed.seq, hash=parsed.hash)
            # A writer died mid-line: drop the torn bytes so the chain continues after the last full line,
            # and say so in the chain itself.
            log.warning("audit log %s: dropping a torn last line (%d bytes)", self.path, len(torn))
            os.ftruncate(self._fd, complete_end)
            self._dropped_bytes += len(torn)
        return head

    def _head_from(self, line: bytes | None, inode: int, size: int) -> _ChainHead:
        if line is not None:
            parsed = self._parse_tail(line)
            return _ChainHead(inode=inode, size=size, seq=parsed.seq, hash=parsed.hash)
        # An empty live file: the chain continues from the newest rotated file, if any.
        for previous in reversed(rotated_files(self.path)):
            with previous.open("rb") as handle:
                prev_line, _ = _read_tail(handle.fileno(), os.fstat(handle.fileno()).st_size)
            if prev_line is not None:
                parsed = self._parse_tail(prev_line)
                return _ChainHead(inode=inode, size=size, seq=parsed.seq, hash=parsed.hash)
        return _ChainHead(inode=inode, size=size, seq=0, hash=GENESIS)

    def _parse_tail(self, line: bytes) -> ParsedLine:
        try:
            return parse_line(line)
        except AuditLineError:
            # Continue the chain from the line as it stands: the break stays visible to verify.
            try:
                seq = int(json.loads(line).get("seq", 0)) if has_hash_suffix(line) else 0
            except (ValueError, AttributeError, TypeError):
                seq = 0
            log.warning("audit log %s: the last line is not a valid audit line; verify will report it", self.path)
            return ParsedLine(seq=seq, prev="", hash=line_hash(line), record={})

    def _rotate(self) -> None:
        os.rename(self.path, next_rotated_file(self.path))
        assert self._fd is not None
        assert self._head is not None
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        stat = os.fstat(self._fd)
        self._head = _ChainHead(inode=stat.st_ino, size=0, seq=self._head.seq, hash=self._head.hash)

    def close(self) -> None:
        """Write what is waiting, then close the file descriptors; a later append reopens them."""
        self.flush()
        with self._thread_lock:
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None
            self._head = None
