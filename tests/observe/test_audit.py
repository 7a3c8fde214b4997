"""The hash-chained audit log: writing, redaction, restart, rotation, several writers, verification."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from cxone_eventbridge.observe.audit import (
    GENESIS,
    REDACTED,
    AuditLog,
    encode_line,
    parse_line,
    redact,
    rotated_files,
    verify_audit_log,
)
from cxone_eventbridge.observe.events import (
    DeliveryAttempted,
    DeliveryDeadLettered,
    DeliveryRetryScheduled,
    DeliverySucceeded,
    ObserverBus,
    TargetChanged,
)
from cxone_eventbridge.observe.status import StatusTracker

T0 = 1_700_000_000.0


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_records(path: Path, count: int, **kwargs: object) -> AuditLog:
    audit = AuditLog(path, clock=lambda: T0, **kwargs)  # type: ignore[arg-type]
    for n in range(count):
        audit.record("create", target=f"t{n}", target_id=str(n))
    return audit


def rewrite_line(path: Path, index: int, transform: object) -> None:
    raw = path.read_bytes().split(b"\n")
    raw[index] = transform(raw[index])  # type: ignore[operator]
    path.write_bytes(b"\n".join(raw))


def test_delivery_outcomes_carry_the_tutorial_keys_and_a_metrics_snapshot(tmp_path: Path) -> None:
    """Delivered and dead-lettered outcomes become lines with timestamp, target, success, retries, snapshot."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path)
    for attempt in (1, 2):
        audit.observe(DeliveryRetryScheduled("e1", "d1", "crm", attempt, 1.0, "status_503", T0))
    audit.observe(DeliverySucceeded("e1", "d1", "crm", attempts=3, end_to_end_s=0.2, at=T0))
    audit.observe(DeliveryDeadLettered("e2", "d2", "crm", attempts=1, reason="permanent", last_status=400, at=T0 + 1))
    audit.observe(DeliveryAttempted("e3", "d3", "crm", 1, "success", 200, 0.01, None, T0))  # not an outcome
    first, second = lines_of(path)
    assert first["timestamp"] == "2023-11-14T22:13:20.000000Z"
    assert (first["target"], first["success"], first["retries"]) == ("crm", True, 2)
    assert first["metrics_snapshot"] == {"success": 1, "failure": 0, "retries": 2}
    assert (second["success"], second["retries"], second["reason"], second["last_status"]) == (
        False,
        0,
        "permanent",
        400,
    )
    assert second["metrics_snapshot"] == {"success": 1, "failure": 1, "retries": 2}
    assert [first["seq"], second["seq"]] == [1, 2]
    assert first["prev"] == GENESIS
    assert second["prev"] == first["hash"]
    assert verify_audit_log(path).ok


@pytest.mark.parametrize("audit_first", [True, False])
def test_the_snapshot_shares_the_status_trackers_counts(tmp_path: Path, audit_first: bool) -> None:
    """With the router's tracker passed in, each outcome is counted once and its own line includes it."""
    status = StatusTracker()
    audit = AuditLog(tmp_path / "audit.log", status=status)
    bus = ObserverBus()
    observers = [audit.observe, status.observe] if audit_first else [status.observe, audit.observe]
    for observer in observers:
        bus.subscribe(observer)
    bus.publish(DeliveryRetryScheduled("e1", "d1", "crm", 1, 1.0, "status_503", T0))
    bus.publish(DeliverySucceeded("e1", "d1", "crm", attempts=2, end_to_end_s=0.2, at=T0))
    bus.publish(DeliveryDeadLettered("e2", "d2", "crm", attempts=1, reason="permanent", last_status=400, at=T0))
    first, second = lines_of(tmp_path / "audit.log")
    assert first["metrics_snapshot"] == {"success": 1, "failure": 0, "retries": 1}
    assert second["metrics_snapshot"] == {"success": 1, "failure": 1, "retries": 1}
    crm = status.target("crm")
    assert (crm.delivered, crm.dead_lettered, crm.retries) == (1, 1, 1)


def test_control_plane_changes_are_recorded_without_secrets(tmp_path: Path) -> None:
    """A TargetChanged record is written with its details, every secret-shaped value redacted."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path, clock=lambda: T0)
    details = {
        "endpoint": "https://example.com/hook",
        "signingSecret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0",
        "authentication": {"type": "bearer", "value": "tok-123-secret"},
        "headers": ["Bearer abc.def.ghi"],
        "eventFilters": [{"field": "eventType", "operator": "equals", "value": "call.answered"}],
        "clientSecret": SecretStr("s3cr3t-value"),
    }
    audit.observe(TargetChanged("update", "crm", "tgt-1", at=T0, details=details))
    text = path.read_text()
    for secret in ("c2VjcmV0c2VjcmV0c2VjcmV0", "tok-123-secret", "abc.def.ghi", "s3cr3t-value"):
        assert secret not in text
    (line,) = lines_of(path)
    assert line["action"] == "update"
    assert line["target"] == "crm"
    assert line["target_id"] == "tgt-1"
    recorded = line["details"]
    assert isinstance(recorded, dict)
    assert recorded["eventFilters"][0]["value"] == "call.answered"  # a filter value is not a secret
    assert recorded["authentication"] == {"type": "bearer", "value": REDACTED}
    assert verify_audit_log(path).ok


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"password": "x"}, {"password": REDACTED}),
        ({"api_key": "x", "apiKey": None}, {"api_key": REDACTED, "apiKey": None}),
        ({"note": "whsec_abc"}, {"note": REDACTED}),
        ({"note": "basic dXNlcjpwYXNz"}, {"note": REDACTED}),
        (
            {"authentication": {"value": "x", "headerName": "X-Key"}},
            {"authentication": {"value": REDACTED, "headerName": "X-Key"}},
        ),
        ({"n": 1, "ok": True, "f": 1.5, "t": (1, 2)}, {"n": 1, "ok": True, "f": 1.5, "t": [1, 2]}),
        ({"when": Path("/x")}, {"when": "/x"}),
    ],
)
def test_redact_scrubs_secret_keys_and_secret_shaped_values(value: object, expected: object) -> None:
    """redact() replaces secret-named keys and whsec/bearer/basic values, and keeps everything else."""
    assert redact(value) == expected


def test_restarted_writer_continues_the_chain(tmp_path: Path) -> None:
    """A new AuditLog on an existing file continues seq and prev from its last line."""
    path = tmp_path / "audit.log"
    write_records(path, 3).close()
    write_records(path, 2)
    seqs = [line["seq"] for line in lines_of(path)]
    assert seqs == [1, 2, 3, 4, 5]
    result = verify_audit_log(path)
    assert result.ok
    assert (result.records, result.first_seq, result.last_seq) == (5, 1, 5)


def test_torn_last_line_is_not_tampering_and_the_next_writer_drops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash mid-write leaves a torn tail: verify passes with torn_tail, a restart truncates it and says so."""
    path = tmp_path / "audit.log"
    write_records(path, 3).close()
    whole = encode_line({"kind": "control", "action": "delete"}, seq=4, prev="f" * 64)
    with path.open("ab") as handle:
        handle.write(whole[: len(whole) // 2])
    torn = verify_audit_log(path)
    assert torn.ok
    assert torn.torn_tail
    assert torn.records == 3
    with caplog.at_level(logging.WARNING):
        write_records(path, 1)
    assert "torn" in caplog.text
    records = lines_of(path)
    assert [r["kind"] for r in records] == ["control", "control", "control", "recovery", "control"]
    assert records[3]["dropped_bytes"] == len(whole) // 2
    after = verify_audit_log(path)
    assert after.ok
    assert not after.torn_tail
    assert after.records == 5


def test_a_lost_newline_keeps_the_complete_record(tmp_path: Path) -> None:
    """When only the final newline was lost, the record is whole: verify accepts it and a restart keeps it."""
    path = tmp_path / "audit.log"
    write_records(path, 2).close()
    path.write_bytes(path.read_bytes()[:-1])
    result = verify_audit_log(path)
    assert result.ok
    assert result.records == 2
    write_records(path, 1)
    assert [r["seq"] for r in lines_of(path)] == [1, 2, 3]
    assert verify_audit_log(path).ok


def test_an_edited_line_is_reported_by_number(tmp_path: Path) -> None:
    """Changing a line's content without fixing its hash is reported as that line, kind edited."""
    path = tmp_path / "audit.log"
    write_records(path, 5).close()
    rewrite_line(path, 2, lambda line: line.replace(b'"t2"', b'"evil"'))
    result = verify_audit_log(path)
    assert not result.ok
    assert result.problem is not None
    assert (result.problem.line, result.problem.kind) == (3, "edited")
    assert result.records == 2


def test_an_edited_and_rehashed_line_is_caught_by_the_next_line(tmp_path: Path) -> None:
    """An editor who recomputes the edited line's own hash still breaks the next line's prev: line 2 reported."""
    path = tmp_path / "audit.log"
    write_records(path, 4).close()

    def forge(line: bytes) -> bytes:
        record = parse_line(line).record
        record["target"] = "evil"
        return encode_line(record, seq=record["seq"], prev=record["prev"]).rstrip(b"\n")

    rewrite_line(path, 1, forge)
    result = verify_audit_log(path)
    assert result.problem is not None
    assert (result.problem.line, result.problem.kind) == (2, "edited")


def test_a_removed_line_is_reported(tmp_path: Path) -> None:
    """Deleting a middle line is reported at the line after the gap, kind removed."""
    path = tmp_path / "audit.log"
    write_records(path, 5).close()
    raw = path.read_bytes().split(b"\n")
    del raw[1]
    path.write_bytes(b"\n".join(raw))
    result = verify_audit_log(path)
    assert result.problem is not None
    assert (result.problem.line, result.problem.kind) == (2, "removed")
    assert "seq jumps from 1 to 3" in result.problem.message


def test_swapped_lines_are_reported_as_reordered(tmp_path: Path) -> None:
    """Swapping two lines is reported as reordered at the first misplaced line."""
    path = tmp_path / "audit.log"
    write_records(path, 5).close()
    raw = path.read_bytes().split(b"\n")
    raw[1], raw[2] = raw[2], raw[1]
    path.write_bytes(b"\n".join(raw))
    result = verify_audit_log(path)
    assert result.problem is not None
    assert (result.problem.line, result.problem.kind) == (2, "reordered")


def test_garbage_in_the_middle_is_malformed_and_a_missing_log_is_reported(tmp_path: Path) -> None:
    """A non-audit line in the middle is malformed; a missing file is a problem, not a crash."""
    path = tmp_path / "audit.log"
    write_records(path, 3).close()
    rewrite_line(path, 1, lambda _line: b"not json at all")
    result = verify_audit_log(path)
    assert result.problem is not None
    assert (result.problem.line, result.problem.kind) == (2, "malformed")
    missing = verify_audit_log(tmp_path / "nope.log")
    assert missing.problem is not None
    assert missing.problem.kind == "missing"


def test_a_forged_first_line_does_not_start_the_chain(tmp_path: Path) -> None:
    """A first line with seq 1 but a non-genesis prev is reported as edited."""
    path = tmp_path / "audit.log"
    path.write_bytes(encode_line({"kind": "control"}, seq=1, prev="a" * 64))
    result = verify_audit_log(path)
    assert result.problem is not None
    assert result.problem.kind == "edited"


def test_rotation_keeps_the_chain_across_files(tmp_path: Path) -> None:
    """Rotating by size renames to .1, .2, ...; the chain verifies across files and an edit in an old file is found."""
    path = tmp_path / "audit.log"
    write_records(path, 60, max_bytes=2048).close()
    rotated = rotated_files(path)
    assert len(rotated) >= 3
    assert [p.name for p in rotated][:2] == ["audit.log.1", "audit.log.2"]
    result = verify_audit_log(path)
    assert result.ok
    assert (result.records, result.last_seq, len(result.files)) == (60, 60, len(rotated) + 1)
    # a restart after rotation continues from the newest file
    write_records(path, 1, max_bytes=2048)
    assert verify_audit_log(path).last_seq == 61
    rewrite_line(rotated[1], 0, lambda line: line.replace(b'"t', b'"x'))
    broken = verify_audit_log(path)
    assert broken.problem is not None
    assert (broken.problem.file, broken.problem.line, broken.problem.kind) == (rotated[1], 1, "edited")


def test_a_deleted_rotated_file_is_noted_or_reported(tmp_path: Path) -> None:
    """Pruning the oldest file leaves a chain that starts later (a note); removing a middle file is a removal."""
    path = tmp_path / "audit.log"
    write_records(path, 60, max_bytes=2048).close()
    rotated = rotated_files(path)
    rotated[1].unlink()
    gap = verify_audit_log(path)
    assert gap.problem is not None
    assert gap.problem.kind == "removed"
    rotated[0].unlink()
    pruned = verify_audit_log(path)
    assert pruned.ok
    assert pruned.first_seq is not None
    assert pruned.first_seq > 1
    assert any("starts at seq" in note for note in pruned.notes)


def test_two_writers_in_one_process_keep_one_linear_chain(tmp_path: Path) -> None:
    """Two AuditLog instances on one file, from several threads, produce one unbroken chain."""
    path = tmp_path / "audit.log"
    writers = [AuditLog(path, max_bytes=8192), AuditLog(path, max_bytes=8192)]

    def work(audit: AuditLog, name: str) -> None:
        for n in range(100):
            audit.record("test", target=f"{name}-{n}")

    threads = [threading.Thread(target=work, args=(writers[i % 2], f"w{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = verify_audit_log(path)
    assert result.ok, result.problem
    assert result.records == 400


WRITER = """
import sys
from cxone_eventbridge.observe.audit import AuditLog
audit = AuditLog(sys.argv[1], max_bytes=16384)
for n in range(int(sys.argv[3])):
    audit.record("apply", target=f"{sys.argv[2]}-{n}")
"""


def test_several_processes_keep_one_linear_chain_through_rotation(tmp_path: Path) -> None:
    """Four processes appending (and rotating) concurrently leave one chain of every record, verified while live."""
    path = tmp_path / "audit.log"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{i}", "150"], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    live_results = []
    while any(p.poll() is None for p in procs):
        if path.exists():
            live_results.append(verify_audit_log(path))
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    assert all(r.ok for r in live_results), [r.problem for r in live_results if not r.ok]
    result = verify_audit_log(path)
    assert result.ok, result.problem
    assert result.records == 600
    assert len(result.files) > 1
    targets = {r["target"] for f in result.files for r in lines_of(f)}
    assert len(targets) == 600


def test_a_failing_audit_observer_never_fails_the_publisher(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An audit log that cannot write logs an error and counts the loss, and publishing carries on."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    audit = AuditLog(blocker / "audit.log")
    seen: list[object] = []
    bus = ObserverBus()
    bus.subscribe(audit.observe)
    bus.subscribe(seen.append)
    event = DeliverySucceeded("e", "d", "crm", 1, 0.1, T0)
    with caplog.at_level(logging.ERROR):
        bus.publish(event)
    assert seen == [event]
    assert "cannot write" in caplog.text
    assert audit.health().records_lost == 1


def test_max_bytes_must_be_sane(tmp_path: Path) -> None:
    """A rotation size below 1 KiB is refused."""
    with pytest.raises(ValueError, match="max_bytes"):
        AuditLog(tmp_path / "a.log", max_bytes=10)


async def test_delivery_lines_are_batched_inside_an_event_loop(tmp_path: Path) -> None:
    """In a running loop, delivery lines wait for their batch; a control change flushes them first, in order."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path, batch_delay_s=0.01)
    flushed = asyncio.Event()
    for number in range(5):
        audit.observe(
            DeliverySucceeded(
                event_id=f"e{number}", delivery_id=f"d{number}", target="crm", attempts=1, end_to_end_s=0.0, at=1.0
            )
        )
    assert not path.exists() or path.read_text() == ""
    asyncio.get_running_loop().call_later(0.05, flushed.set)
    await flushed.wait()
    assert len(path.read_text().splitlines()) == 5
    audit.observe(
        DeliverySucceeded(event_id="e5", delivery_id="d5", target="crm", attempts=2, end_to_end_s=0.0, at=2.0)
    )
    audit.observe(TargetChanged(action="delete", target="crm", target_id="tgt_1", at=3.0))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["delivery"] * 6 + ["control"]
    assert records[5]["event_id"] == "e5"
    audit.close()
    assert verify_audit_log(path).ok


async def test_close_writes_what_is_waiting(tmp_path: Path) -> None:
    """close() writes the delivery lines still waiting for their batch."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path, batch_delay_s=60)
    audit.observe(
        DeliveryDeadLettered(
            event_id="e1",
            delivery_id="d1",
            target="crm",
            attempts=4,
            reason="retries_exhausted",
            last_status=503,
            at=1.0,
        )
    )
    audit.close()
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["success"] is False
    assert verify_audit_log(path).ok
