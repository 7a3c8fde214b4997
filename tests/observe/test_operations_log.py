"""Operations as single structured log lines: circuit changes, targets disabled, queue migrations."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cxone_eventbridge.cli.logs import JsonLinesFormatter
from cxone_eventbridge.observe.events import CircuitStateChanged, DeliveryAttempted, TargetChanged
from cxone_eventbridge.observe.operations_log import OperationsLog
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue

T0 = 1_700_000_000.0


def operations(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The operations lines, as ``--log-format json`` would print them."""
    formatter = JsonLinesFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records if record.name.endswith(".operations")]


def test_an_open_circuit_is_one_line_saying_why_and_until_when(caplog: pytest.LogCaptureFixture) -> None:
    """open: a warning with target, state, until and the tracker's reason; closed: an info line."""
    caplog.set_level(logging.INFO, logger="cxone_eventbridge")
    status = StatusTracker()
    log = OperationsLog(status)
    for n in range(5):
        status.observe(DeliveryAttempted("e", f"d{n}", "crm", 1, "retry", 503, 0.01, None, T0))
    for event in (CircuitStateChanged("crm", "open", T0, until=T0 + 5), CircuitStateChanged("crm", "closed", T0 + 9)):
        status.observe(event)
        log.observe(event)
    opened, closed = operations(caplog)
    assert opened["level"] == "warning"
    assert opened["message"] == (
        "circuit of target crm opened until 2023-11-14T22:13:25.000Z: 5 failed attempts in a row, the last: status 503"
    )
    assert (opened["operation"], opened["target"], opened["state"]) == ("circuit", "crm", "open")
    assert opened["until"] == "2023-11-14T22:13:25.000Z"
    assert (closed["level"], closed["state"], closed["message"]) == (
        "info",
        "closed",
        "circuit of target crm is closed",
    )


def test_a_disabled_target_is_one_warning_and_other_changes_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A 410 disables a target: one line naming it and why; control-plane edits are the audit log's job."""
    caplog.set_level(logging.INFO, logger="cxone_eventbridge")
    log = OperationsLog()
    log.observe(TargetChanged("disabled", "crm", "t1", T0, {"reason": "gone", "status": 410}))
    log.observe(TargetChanged("create", "crm", "t1", T0))
    log.observe(CircuitStateChanged("bi", "open", T0))
    disabled, opened = operations(caplog)
    assert (disabled["operation"], disabled["target"], disabled["reason"]) == ("target_disabled", "crm", "gone")
    assert disabled["message"] == "target crm disabled (gone)"
    assert opened["message"] == "circuit of target bi opened"


async def test_a_queue_migration_is_one_line_with_both_versions(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Opening a new SQLite queue migrates it from version 0, and says so once; reopening says nothing."""
    caplog.set_level(logging.INFO, logger="cxone_eventbridge")
    for _ in range(2):
        queue = SQLiteQueue(tmp_path / "queue.db")
        await queue.open()
        await queue.close()
    [migrated] = operations(caplog)
    assert (migrated["operation"], migrated["backend"], migrated["from_version"]) == ("migration", "SQLite", 0)
    assert migrated["to_version"] == queue.schema_version
