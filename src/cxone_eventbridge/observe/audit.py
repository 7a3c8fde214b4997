"""A tamper-evident audit log: JSON lines, each carrying the hash of the line before it.

Every control-plane change (``TargetChanged``: create, update, delete, test, apply) and every delivery
outcome (delivered or dead-lettered, with the tutorial's ``timestamp``, ``target``, ``success``,
``retries`` and a per-target metrics snapshot) becomes one line::

    {"seq":7,"prev":"<sha256 of line 6>","timestamp":"...","kind":"delivery",...,"hash":"<sha256 of this line>"}

``hash`` is the SHA-256 of the exact bytes of the line without its ``,"hash":"..."`` suffix, so
verification never depends on re-serialising JSON. An edited line fails its own hash; an edited line
whose hash was recomputed breaks the next line's ``prev``; a removed or reordered line breaks ``prev``
and the ``seq`` numbering, which tells the three apart.

Several writers (threads or processes) may share one file: each append happens under an exclusive
``fcntl.flock`` on ``<path>.lock``, and re-reads the chain's tail when another writer moved it, so the
chain stays linear. A writer that crashed mid-line leaves a torn tail; the next writer truncates it
(under the lock) and continues after the last complete line. When the file reaches ``max_bytes`` it is
renamed ``<path>.<n>`` (n = 1, 2, ...) and a new file continues the chain. Nothing is ever deleted.

Delivery outcomes arrive thousands per second; written one by one, each costs a lock, a hash and a write
(about 70 us here, against 24 us in batches of 100). Inside a running event loop, ``observe`` therefore
collects them and writes them together ``batch_delay_s`` later (or at once when ``max_batch`` are
waiting); control-plane changes flush what is waiting and are written at once, so lines stay in order.
``flush()`` and ``close()`` write what is waiting; a killed process loses at most ``batch_delay_s`` of
delivery lines (the queue, not the audit log, is what makes deliveries durable).

What the chain proves and what it does not: without a key anybody able to write the file can rewrite it
from the edited line to the end with fresh hashes; ship lines off the host (a SIEM) to pin the chain.
Secrets are never written: records carry no secret fields, and :func:`redact` scrubs anything that looks
like one defensively.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from cxone_eventbridge.observe.events import (
    DeliveryDeadLettered,
    DeliverySucceeded,
    ObservedEvent,
    TargetChanged,
)

log = logging.getLogger(__name__)

DEFAULT_AUDIT_PATH = Path("target_audit.log")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BATCH_DELAY_S = 0.05
DEFAULT_MAX_BATCH = 256
GENESIS = "0" * 64
REDACTED = "[redacted]"

_HASH_SUFFIX = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|authorization|api[_-]?key|credential|private[_-]?key|ingest[_-]?key)",
    re.IGNORECASE,
)
# Values that are secrets whatever key they sit under: signing secrets and bearer credentials.
_SECRET_VALUE = re.compile(r"^(whsec_\S+|bearer\s+\S+|basic\s+\S+)$", re.IGNORECASE)
_TAIL_CHUNK = 64 * 1024


def redact(value: Any, *, key: str = "") -> Any:
    """A JSON-ready copy of ``value`` with anything secret-looking replaced by ``[redacted]``.

    Keys that name a secret (``signingSecret``, ``password``, ``apiKey``, ...), an ``authentication``
    mapping's ``value``, ``SecretStr`` instances and strings shaped like a signing secret or a bearer
    credential are all replaced; the audit records carry no secrets, this is the second line of defence.
    """
    # The common types first, by exact type: this runs on every delivery outcome.
    kind = type(value)
    if kind is str:
        return REDACTED if _SECRET_VALUE.match(value.strip()) else value
    if value is None or kind is bool or kind is int or kind is float:
        return value
    if isinstance(value, dict | Mapping):
        auth = key.lower() == "authentication"
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            if v is not None and (_SECRET_KEY.search(name) or (auth and name == "value")):
                out[name] = REDACTED
            else:
                out[name] = redact(v, key=name)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, key=key) for v in value]
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, str):
        return REDACTED if _SECRET_VALUE.match(value.strip()) else value
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def _line_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def encode_line(record: Mapping[str, Any], *, seq: int, prev: str) -> bytes:
    """One audit line (with its newline): ``seq`` and ``prev`` first, the record, then its own hash."""
    payload = {"seq": seq, "prev": prev, **{k: v for k, v in record.items() if k not in {"seq", "prev", "hash"}}}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    digest = _line_hash(body)
    return body[:-1] + b',"hash":"' + digest.encode() + b'"}\n'


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """A complete audit line whose own hash checks out."""

    seq: int
    prev: str
    hash: str
    record: dict[str, Any]


class LineError(ValueError):
    """A line is not a well-formed audit line, or its content does not match its hash."""


def parse_line(line: bytes) -> ParsedLine:
    """Check one line (without its newline) against its own hash."""
    match = _HASH_SUFFIX.search(line)
    if match is None:
        raise LineError("has no hash")
    body = line[: match.start()] + b"}"
    digest = match.group(1).decode()
    if _line_hash(body) != digest:
        raise LineError("does not match its hash (its content was changed)")
    try:
        record = json.loads(body)
    except ValueError as exc:
        raise LineError("is not valid JSON") from exc
    if not isinstance(record, dict):
        raise LineError("is not a JSON object")
    seq, prev = record.get("seq"), record.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str):
        raise LineError("has no seq/prev")
    return ParsedLine(seq=seq, prev=prev, hash=digest, record=record)


def rotated_files(path: Path) -> list[Path]:
    """``<path>.1``, ``<path>.2``, ... that exist, oldest first."""
    found: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        prefix = path.name + "."
        for candidate in path.parent.iterdir():
            suffix = candidate.name.removeprefix(prefix)
            if candidate.name.startswith(prefix) and suffix.isdigit():
                found.append((int(suffix), candidate))
    return [p for _, p in sorted(found)]


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


@dataclass(slots=True)
class _ChainHead:
    """Where the chain ends: the file it ends in (inode, size) and the last line's seq and hash."""

    inode: int
    size: int
    seq: int
    hash: str


@dataclass(slots=True)
class _TargetCounts:
    delivered: int = 0
    failed: int = 0
    retries: int = 0

    def snapshot(self) -> dict[str, int]:
        # The tutorial's keys (success/failure/retries), which SIEM parsers of the old log expect.
        return {"success": self.delivered, "failure": self.failed, "retries": self.retries}


class AuditLog:
    """Appends hash-chained JSON lines; use ``observe`` as an ``ObserverBus`` observer.

    Thread-safe and multi-process safe. ``clock`` returns epoch seconds (injected for tests).
    ``fsync`` makes each append durable before returning (slower; see docs/router.md for numbers).
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
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._head: _ChainHead | None = None
        self._counts: dict[str, _TargetCounts] = {}
        self._dropped_bytes = 0

    # -- observer ---------------------------------------------------------------------------------

    def observe(self, event: ObservedEvent) -> None:
        """Write control-plane changes and delivery outcomes; ignore every other record."""
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
            counts = self._counts.setdefault(event.target, _TargetCounts())
            failure: dict[str, Any] = {}
            if isinstance(event, DeliverySucceeded):
                counts.delivered += 1
            else:
                counts.failed += 1
                failure = {"reason": event.reason, "last_status": event.last_status}
            counts.retries += max(0, event.attempts - 1)
            self._append_delivery(
                event.target,
                not failure,
                event.attempts,
                event.at,
                event_id=event.event_id,
                delivery_id=event.delivery_id,
                snapshot=counts.snapshot(),
                **failure,
            )

    __call__ = observe

    def _append_delivery(
        self,
        target: str,
        success: bool,
        attempts: int,
        at: float,
        *,
        snapshot: dict[str, int],
        **extra: Any,
    ) -> None:
        record = {
            "kind": "delivery",
            "timestamp": self._timestamp(at),
            "target": target,
            "success": success,
            "retries": max(0, attempts - 1),
            **extra,
            "metrics_snapshot": snapshot,
        }
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
        """Append several records under one lock acquisition (one write)."""
        if not records:
            return
        clean = [redact(r) for r in records]
        with self._thread_lock, self._exclusive():
            head = self._locate_head()
            if self._dropped_bytes:
                clean.insert(
                    0, {"kind": "recovery", "timestamp": self._timestamp(None), "dropped_bytes": self._dropped_bytes}
                )
                self._dropped_bytes = 0
            data = bytearray()
            seq, prev = head.seq, head.hash
            for record in clean:
                seq += 1
                line = encode_line(record, seq=seq, prev=prev)
                prev = line[-67:-3].decode()  # the 64 hex digits before '"}\n'
                data += line
            assert self._fd is not None
            os.write(self._fd, bytes(data))
            if self.fsync:
                os.fsync(self._fd)
            head.seq, head.hash, head.size = seq, prev, head.size + len(data)
            if head.size >= self.max_bytes:
                self._rotate()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._lock_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self._lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @staticmethod
    def _lock_path(path: Path) -> Path:
        return path.with_name(path.name + ".lock")

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
        self._head = head
        return head

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
            except LineError:
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
        except LineError:
            # Continue the chain from the line as it stands: the break stays visible to verify.
            match = _HASH_SUFFIX.search(line)
            try:
                seq = int(json.loads(line).get("seq", 0)) if match else 0
            except (ValueError, AttributeError, TypeError):
                seq = 0
            log.warning("audit log %s: the last line is not a valid audit line; verify will report it", self.path)
            return ParsedLine(seq=seq, prev="", hash=_line_hash(line), record={})

    def _rotate(self) -> None:
        existing = rotated_files(self.path)
        number = int(existing[-1].name.rsplit(".", 1)[1]) + 1 if existing else 1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{number}"))
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


# -- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """The first place where the chain does not hold."""

    file: Path
    line: int  # 1-based, within ``file``
    kind: str  # edited | removed | reordered | malformed | missing
    message: str


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """What ``verify_audit_log`` found. ``ok`` is false only for tampering, never for a torn tail."""

    files: tuple[Path, ...]
    records: int
    first_seq: int | None
    last_seq: int | None
    torn_tail: bool = False
    problem: AuditProblem | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for ``cxeb audit verify --output json``."""
        return {
            "ok": self.ok,
            "files": [str(f) for f in self.files],
            "records": self.records,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "tornTail": self.torn_tail,
            "problem": None
            if self.problem is None
            else {
                "file": str(self.problem.file),
                "line": self.problem.line,
                "kind": self.problem.kind,
                "message": self.problem.message,
            },
            "notes": list(self.notes),
        }


def _snapshot(path: Path) -> list[tuple[Path, bytes]]:
    """Every file of the log, read consistently: opened under a shared lock so no rotation interleaves."""
    lock_path = AuditLog._lock_path(path)
    lock_fd: int | None = None
    with contextlib.suppress(OSError):
        lock_fd = os.open(lock_path, os.O_RDONLY)
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
    try:
        handles: list[tuple[Path, Any, int]] = []
        for file in [*rotated_files(path), path]:
            with contextlib.suppress(FileNotFoundError):
                handle = file.open("rb")
                handles.append((file, handle, os.fstat(handle.fileno()).st_size))
    finally:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)
    contents: list[tuple[Path, bytes]] = []
    for file, handle, size in handles:
        with handle:
            # Writers only append (or rotate by rename), so the first ``size`` bytes are the snapshot.
            contents.append((file, handle.read(size)))
    return contents


_SEQ_PREFIX = re.compile(rb'^\{"seq":(\d+),')


def verify_audit_log(path: Path | str) -> AuditVerification:
    """Check the whole chain (rotated files, then the live file), safe to run while writers append.

    A last line without its newline that does not parse is a torn write (a crash, or a writer caught
    mid-append): reported as ``torn_tail``, not as tampering. Anything else that breaks the chain is
    reported as the first edited, removed, reordered or malformed line.
    """
    path = Path(path)
    snapshot = _snapshot(path)
    if not snapshot:
        return AuditVerification(
            files=(),
            records=0,
            first_seq=None,
            last_seq=None,
            problem=AuditProblem(path, 0, "missing", f"{path} does not exist"),
        )
    files = tuple(f for f, _ in snapshot)
    entries: list[tuple[Path, int, bytes, bool]] = []  # file, 1-based line number, bytes, ends with newline
    for file, data in snapshot:
        lines = data.split(b"\n")
        trailing = lines.pop()  # b"" when the file ends with a newline
        entries.extend((file, n + 1, line, True) for n, line in enumerate(lines))
        if trailing:
            entries.append((file, len(lines) + 1, trailing, False))
    all_seqs = {int(m.group(1)) for _, _, line, _ in entries if (m := _SEQ_PREFIX.match(line))}

    notes: list[str] = []
    records = 0
    first_seq: int | None = None
    last: ParsedLine | None = None
    torn = False

    def result(problem: AuditProblem | None = None) -> AuditVerification:
        return AuditVerification(
            files=files,
            records=records,
            first_seq=first_seq,
            last_seq=last.seq if last is not None else None,
            torn_tail=torn,
            problem=problem,
            notes=tuple(notes),
        )

    for index, (file, number, line, complete) in enumerate(entries):
        where = f"{file} line {number}"
        try:
            parsed = parse_line(line)
        except LineError as exc:
            if not complete and index == len(entries) - 1 and file == files[-1]:
                torn = True
                notes.append(f"{where} is incomplete (a torn write by a crashed or busy writer); it is ignored")
                break
            kind = "edited" if _HASH_SUFFIX.search(line) else "malformed"
            return result(AuditProblem(file, number, kind, f"{where} {exc}"))
        if last is None:
            first_seq = parsed.seq
            if parsed.seq == 1 and parsed.prev != GENESIS:
                return result(AuditProblem(file, number, "edited", f"{where} does not start the chain"))
            if parsed.seq != 1:
                notes.append(f"the chain starts at seq {parsed.seq}: earlier records are not present")
        elif parsed.prev != last.hash or parsed.seq != last.seq + 1:
            expected = last.seq + 1
            if parsed.seq == expected:
                # This line is intact and in place, so the line before it changed after it was written.
                before = entries[index - 1]
                return result(
                    AuditProblem(before[0], before[1], "edited", f"{before[0]} line {before[1]} was edited (rehashed)")
                )
            if parsed.seq > expected and not any(s in all_seqs for s in range(expected, parsed.seq)):
                return result(
                    AuditProblem(
                        file,
                        number,
                        "removed",
                        f"{parsed.seq - expected} line(s) removed before {where} "
                        f"(seq jumps from {last.seq} to {parsed.seq})",
                    )
                )
            return result(
                AuditProblem(file, number, "reordered", f"{where} is out of order (seq {parsed.seq} after {last.seq})")
            )
        last = parsed
        records += 1
        if not complete:
            notes.append(f"{where} has no newline (only the newline of the last write was lost)")
    return result()
