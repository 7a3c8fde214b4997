"""Verifying an audit log: the whole chain, rotated files first, safe to run while writers append.

An edited line fails its own hash; an edited line whose hash was recomputed breaks the next line's
``prev``; a removed or reordered line breaks ``prev`` and the ``seq`` numbering, which tells the three
apart. A last line without its newline that does not parse is a torn write, not tampering.

An intact chain may still be incomplete, and the verdict says so rather than "intact": a chain that starts
after seq 1 (earlier records pruned, or the log deleted or replaced), and records the writers left to say
something was lost: ``gap`` (writes failed, e.g. a full disk), ``recovery`` (a torn line dropped) and
``continuation`` (the file was deleted or replaced while a writer used it; the chain continues from the
line it names, the only place where ``prev`` may point elsewhere than the line before).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxone_eventbridge.exceptions import AuditLineError
from cxone_eventbridge.observe.audit.codec import GENESIS, ParsedLine, has_hash_suffix, leading_seq, parse_line
from cxone_eventbridge.observe.audit.files import lock_path, rotated_files


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
    gaps: tuple[str, ...] = field(default_factory=tuple)  # what the chain itself says was lost

    @property
    def ok(self) -> bool:
        """No line was edited, removed or reordered (the chain may still be incomplete: ``complete``)."""
        return self.problem is None

    @property
    def complete(self) -> bool:
        """Intact from seq 1, with no record saying that something was lost."""
        return self.ok and self.first_seq in (None, 1) and not self.gaps

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for ``cxeb audit verify --output json``."""
        return {
            "ok": self.ok,
            "files": [str(f) for f in self.files],
            "records": self.records,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "tornTail": self.torn_tail,
            "complete": self.complete,
            "gaps": list(self.gaps),
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
    lock_fd: int | None = None
    with contextlib.suppress(OSError):
        lock_fd = os.open(lock_path(path), os.O_RDONLY)
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
    all_seqs = {seq for _, _, line, _ in entries if (seq := leading_seq(line)) is not None}

    notes: list[str] = []
    gaps: list[str] = []
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
            gaps=tuple(gaps),
        )

    for index, (file, number, line, complete) in enumerate(entries):
        where = f"{file} line {number}"
        try:
            parsed = parse_line(line)
        except AuditLineError as exc:
            if not complete and index == len(entries) - 1 and file == files[-1]:
                torn = True
                notes.append(f"{where} is incomplete (a torn write by a crashed or busy writer); it is ignored")
                break
            kind = "edited" if has_hash_suffix(line) else "malformed"
            return result(AuditProblem(file, number, kind, f"{where} {exc}"))
        if last is None:
            first_seq = parsed.seq
            if parsed.seq == 1 and parsed.prev != GENESIS:
                return result(AuditProblem(file, number, "edited", f"{where} does not start the chain"))
            if parsed.seq != 1:
                notes.append(
                    f"the chain starts at seq {parsed.seq}: earlier records are not present (rotated files "
                    "pruned, or the log deleted or replaced)"
                )
        elif _continues_elsewhere(parsed) and (parsed.prev != last.hash or parsed.seq != last.seq + 1):
            pass  # a writer found the file replaced and said so: reported below, not tampering
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
        if (said := _loss_said(parsed)) is not None:
            gaps.append(f"{where} (seq {parsed.seq}): {said}")
        last = parsed
        records += 1
        if not complete:
            notes.append(f"{where} has no newline (only the newline of the last write was lost)")
    return result()


def _continues_elsewhere(parsed: ParsedLine) -> bool:
    """A continuation record whose ``prev`` is the line it names (not necessarily the line before it)."""
    record = parsed.record
    return (
        record.get("kind") == "continuation"
        and record.get("previous_hash") == parsed.prev
        and record.get("previous_seq") == parsed.seq - 1
    )


def _loss_said(parsed: ParsedLine) -> str | None:
    """What a record written to say that something was lost says, or None for any other record."""
    record = parsed.record
    kind = record.get("kind")
    if kind == "gap":
        return (
            f"{record.get('records_lost')} record(s) were lost: {record.get('failed_writes')} write(s) failed "
            f"({record.get('error')}) from {record.get('first_failure')} to {record.get('last_failure')}"
        )
    if kind == "recovery":
        return f"a torn last line of {record.get('dropped_bytes')} byte(s) was dropped (a writer crashed mid-line)"
    if kind == "continuation":
        return (
            f"the log was deleted or replaced while a writer used it (it then ended at seq {record.get('found_seq')}); "
            f"the chain continues from seq {record.get('previous_seq')}"
        )
    return None
