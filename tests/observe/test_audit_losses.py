"""The audit log never loses or forgets silently: failed writes are counted and recorded, replaced files noticed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cxone_eventbridge.observe.audit import AuditLog, verify_audit_log
from cxone_eventbridge.observe.events import DeliverySucceeded, ObserverBus

T0 = 1_700_000_000.0

# A writer that hits a file-size limit (EFBIG, as a full disk gives ENOSPC: the write fails part-way),
# then gets room again. RLIMIT_FSIZE is per process, so the test process's own files are not affected.
FULL_DISK_WRITER = r"""
import json, logging, resource, signal, sys
from cxone_eventbridge.observe.audit import AuditLog
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
audit = AuditLog(sys.argv[1], clock=lambda: 1_700_000_000.0)
for n in range(3):
    audit.record("create", target=f"before-{n}")
size = audit.path.stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))  # room for part of one more line only
for n in range(5):
    audit.append_many([{"kind": "control", "action": "create", "target": f"lost-{n}-{m}"} for m in range(2)])
health = audit.health()
after_failures = audit.path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
audit.record("create", target="after")
print(json.dumps({"size": size, "after_failures": after_failures, "health": [health.failing, health.failed_writes,
      health.records_lost, health.last_error], "healthy_again": audit.health().failing}))
"""


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failed_writes_are_counted_logged_undone_and_recorded_as_a_gap(tmp_path: Path) -> None:
    """5 writes failing on a full file: 10 records counted lost, one error, no torn line; then a gap record verify reports."""
    path = tmp_path / "audit.log"
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    outcome = json.loads(run.stdout)
    assert outcome["health"] == [True, 5, 10, "File too large"]
    assert outcome["healthy_again"] is False
    assert outcome["after_failures"] == outcome["size"]  # the part of a line that fitted was taken back
    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "cannot write (File too large)" in errors[0]
    assert "10 record(s) were lost in 5 failed write(s), recorded as a gap at seq 4" in run.stderr

    records = lines_of(path)
    assert [r["kind"] for r in records] == ["control"] * 3 + ["gap", "control"]
    gap = records[3]
    assert (gap["records_lost"], gap["failed_writes"], gap["error"]) == (10, 5, "File too large")
    result = verify_audit_log(path)
    assert result.ok
    assert not result.complete
    assert len(result.gaps) == 1
    assert "10 record(s) were lost: 5 write(s) failed (File too large)" in result.gaps[0]


def test_an_unwritable_log_reports_its_health_and_never_fails_the_publisher(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes to a full device (/dev/full) fail: health says failing with the error, the publisher carries on."""
    path = tmp_path / "audit.log"
    path.symlink_to("/dev/full")
    audit = AuditLog(path)
    seen: list[object] = []
    bus = ObserverBus()
    bus.subscribe(audit.observe)
    bus.subscribe(seen.append)
    with caplog.at_level(logging.ERROR):
        for n in range(3):
            bus.publish(DeliverySucceeded(f"e{n}", f"d{n}", "crm", 1, 0.1, T0))
    assert len(seen) == 3
    health = audit.health()
    assert (health.failing, health.failed_writes, health.records_lost) == (True, 3, 3)
    assert health.last_error == "No space left on device"
    assert caplog.text.count("cannot write") == 1


def test_a_log_deleted_while_in_use_continues_the_chain_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After the file is deleted, the next line continues from seq 3 with a continuation record; verify says incomplete."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path, clock=lambda: T0)
    for n in range(3):
        audit.record("create", target=f"t{n}")
    last_hash = lines_of(path)[-1]["hash"]
    path.unlink()
    with caplog.at_level(logging.ERROR):
        audit.record("create", target="after")
    assert "deleted or replaced while in use" in caplog.text
    records = lines_of(path)
    assert [(r["seq"], r["kind"]) for r in records] == [(4, "continuation"), (5, "control")]
    assert (records[0]["prev"], records[0]["previous_seq"], records[0]["previous_hash"]) == (last_hash, 3, last_hash)
    result = verify_audit_log(path)
    assert result.ok
    assert not result.complete
    assert result.first_seq == 4
    assert any("starts at seq 4" in note for note in result.notes)
    assert any("deleted or replaced" in gap for gap in result.gaps)


def test_a_log_replaced_while_in_use_is_noticed_and_the_break_is_not_called_tampering(tmp_path: Path) -> None:
    """A file swapped for another chain: the writer continues its own chain after it, naming its previous head."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path, clock=lambda: T0)
    for n in range(3):
        audit.record("create", target=f"t{n}")
    other = tmp_path / "other.log"
    AuditLog(other, clock=lambda: T0).record("create", target="foreign")
    os.replace(other, path)
    audit.record("create", target="after")
    records = lines_of(path)
    assert [(r["seq"], r["kind"]) for r in records] == [(1, "control"), (4, "continuation"), (5, "control")]
    assert (records[1]["found_seq"], records[1]["previous_seq"]) == (1, 3)
    result = verify_audit_log(path)
    assert result.ok, result.problem
    assert not result.complete
    assert len(result.gaps) == 1


def test_a_log_that_starts_mid_chain_or_with_a_recovery_is_not_complete(tmp_path: Path) -> None:
    """An intact chain from seq 1 is complete; one missing its start, or recording a dropped torn line, is not."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path, clock=lambda: T0)
    for n in range(3):
        audit.record("create", target=f"t{n}")
    assert verify_audit_log(path).complete
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[1:]))
    mid = verify_audit_log(path)
    assert mid.ok
    assert not mid.complete
    assert mid.to_dict()["complete"] is False
