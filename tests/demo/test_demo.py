"""The demo end to end, in a shortened mode: real servers on loopback, real files in tmp_path."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.demo import DemoListener, DemoOptions, DemoResult, run_demo
from cxone_eventbridge.demo.inputs import read_events
from cxone_eventbridge.demo.options import DEMO_SECRETS, FLAKY_RECORD, HEALTHY_RECORD, default_examples_dir
from cxone_eventbridge.demo.results import Progress
from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file
from cxone_eventbridge.matching import RoutingTable

EVENTS = 300
EXAMPLES = default_examples_dir()


class Recorder(DemoListener):
    """Remembers the order of the steps and every progress report."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.progress_reports: list[Progress] = []

    def started(self, urls: Any) -> None:
        self.steps.append("started")

    def applied(self, outcome: Any) -> None:
        self.steps.append("applied")

    def tested(self, tests: Any) -> None:
        self.steps.append("tested")

    def routing_started(self, events: int, by_priority: Any) -> None:
        self.steps.append("routing_started")

    def progress(self, progress: Progress) -> None:
        self.progress_reports.append(progress)

    def routed(self, ingest: Any, deliveries: Any) -> None:
        self.steps.append("routed")

    def replayed(self, replay: Any) -> None:
        self.steps.append("replayed")

    def exported(self, terraform: Any) -> None:
        self.steps.append("exported")

    def drifted(self, drift: Any) -> None:
        self.steps.append("drifted")

    def verified(self, audit: Any) -> None:
        self.steps.append("verified")


def _options(output_dir: Path, **overrides: Any) -> DemoOptions:
    values: dict[str, Any] = {
        "output_dir": output_dir,
        "max_events": EVENTS,
        "batch_size": 100,
        # Short Retry-After so the test's retries take a fraction of a second; the real demo uses 1 s.
        "flaky_retry_after_s": 0.05,
        "flaky_fail_rate": 0.3,
        "terraform_binary": shutil.which("terraform"),
    }
    values.update(overrides)
    return DemoOptions(**values)


def _expected_deliveries(limit: int) -> dict[str, int]:
    """An independent count: the first ``limit`` example events matched against the example targets."""
    loaded = load_targets_file(EXAMPLES / "targets.yaml", environ=DEMO_SECRETS, resolution=SecretResolution.REQUIRED)
    table = RoutingTable(loaded.targets)
    counts = dict.fromkeys((t.name for t in loaded.targets), 0)
    for events in read_events(EXAMPLES / "events.jsonl", limit=limit).values():
        for event in events:
            for name in table.match(event):
                counts[name] += 1
    return counts


def _refuses(url: str) -> bool:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def _children() -> list[int]:
    """Live child processes of this process (Linux /proc), zombies included."""
    mine = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == mine:
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class DemoRun:
    """One shortened demo run, what its listener heard, and the threads alive before and after it."""

    result: DemoResult
    recorder: Recorder
    out: Path
    threads_before: set[str]
    threads_after: set[str]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """Run the demo once for the module's assertions, in its own event loop as `cxeb demo` does."""
    before = {t.name for t in threading.enumerate()}
    recorder = Recorder()
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    result = asyncio.run(run_demo(_options(out), recorder))
    after = {t.name for t in threading.enumerate() if t.is_alive()}
    return DemoRun(result, recorder, out, before, after)


def test_demo_routes_every_matching_event_and_reports_each_target(demo_run: DemoRun) -> None:
    """Every (event, target) match of the first 300 events is delivered or dead-lettered, per target."""
    result, recorder = demo_run.result, demo_run.recorder
    expected = _expected_deliveries(EVENTS)
    assert result.ingest.events == EVENTS
    assert sum(result.ingest.by_priority.values()) == EVENTS
    assert result.ingest.deliveries == sum(expected.values())
    rows = {row.target: row for row in result.deliveries}
    assert {name: row.queued for name, row in rows.items()} == expected
    for row in rows.values():
        assert row.delivered + row.dead_lettered == row.queued
        if row.endpoint == "healthy":
            assert (row.retried, row.dead_lettered) == (0, 0)
    flaky = [row for row in rows.values() if row.endpoint == "flaky"]
    assert sum(row.retried for row in flaky) > 0  # 30% of 503s over ~40 deliveries: retries are certain
    assert recorder.steps == [
        "started",
        "applied",
        "tested",
        "routing_started",
        "routed",
        "replayed",
        "exported",
        "drifted",
        "verified",
    ]
    last = recorder.progress_reports[-1]
    assert (last.events_accepted, last.deliveries_settled) == (EVENTS, result.ingest.deliveries)


def test_demo_applies_tests_replays_exports_detects_drift_and_verifies_audit(demo_run: DemoRun) -> None:
    """The control-plane steps: 5 creates then no changes, 5 tests, replay accounting, export, drift, audit."""
    result, out = demo_run.result, demo_run.out
    assert [step.action.value for step in result.apply.report.done] == ["create"] * 5
    assert result.apply.replan_has_changes is False
    assert len(result.tests) == 5
    healthy = [t for t in result.tests if t.endpoint.startswith(result.urls.healthy_receiver + "/")]
    assert len(healthy) == 3
    assert all(t.passed for t in healthy)
    replay = result.replay
    assert replay.replayed == len(replay.dead_letters)
    assert replay.delivered + replay.dead_again == replay.replayed
    assert all(letter["reason"] == "retries_exhausted" for letter in replay.dead_letters)
    assert result.terraform.export.state_path == out / "terraform" / "terraform.tfstate"
    state = json.loads(result.terraform.export.state_path.read_text())
    assert state["version"] == 4
    assert len(state["resources"]) == 5
    if shutil.which("terraform") is not None:
        assert result.terraform.state_list is not None
        assert len(result.terraform.state_list) == 5
    assert result.drift.exit_code == 2
    [item] = result.drift.report.items
    assert (item.name, [c.path for c in item.changes]) == ("Voice escalations", ["description"])
    assert result.audit.ok
    delivered = sum(row.delivered for row in result.deliveries)
    assert result.audit.records >= delivered + replay.replayed
    assert result.audit.first_seq == 1


def test_demo_sends_each_targets_credentials_to_the_receivers(demo_run: DemoRun) -> None:
    """The receivers' records show the secrets the demo supplied, by target path, and no secret in the audit log."""
    out = demo_run.out
    records = [json.loads(line) for line in (out / HEALTHY_RECORD).read_text().splitlines()]
    by_path: dict[str, dict[str, str]] = {}
    for record in records:
        by_path.setdefault(record["path"], record["headers"])
    assert by_path["/hooks/voice-escalations"]["Authorization"] == f"Bearer {DEMO_SECRETS['DEMO_WALLBOARD_TOKEN']}"
    assert by_path["/hooks/digital"]["X-CRM-Key"] == DEMO_SECRETS["DEMO_CRM_KEY"]
    assert by_path["/hooks/wfm"]["Authorization"].startswith("Basic ")
    assert (out / FLAKY_RECORD).stat().st_size > 0
    audit = (out / "target_audit.log").read_text()
    for secret in DEMO_SECRETS.values():
        assert secret not in audit


def test_demo_leaves_no_server_thread_or_child_process_behind(demo_run: DemoRun) -> None:
    """After the run every port it listened on refuses connections, and no thread or child process remains."""
    urls = demo_run.result.urls
    for url in (urls.sandbox, urls.healthy_receiver, urls.flaky_receiver, urls.router):
        assert _refuses(url), url
    assert demo_run.threads_after <= demo_run.threads_before
    assert _children() == []


async def test_demo_twice_in_the_same_directory_starts_afresh(tmp_path: Path) -> None:
    """A second run over the first one's output routes the same deliveries and starts a new audit chain."""
    out = tmp_path / "demo-output"
    first = await run_demo(_options(out, max_events=60, terraform_binary=None))
    second = await run_demo(_options(out, max_events=60, terraform_binary=None))
    assert second.ingest.deliveries == first.ingest.deliveries == sum(_expected_deliveries(60).values())
    assert [(r.target, r.queued) for r in second.deliveries] == [(r.target, r.queued) for r in first.deliveries]
    assert second.audit.ok
    assert second.audit.first_seq == 1
    assert second.terraform.export.identity.serial == 1


async def test_demo_stops_every_server_when_a_step_fails(tmp_path: Path) -> None:
    """A secret variable the demo does not supply fails the run naming it, after the servers started: all stopped."""
    bad = tmp_path / "targets.yaml"
    bad.write_text(
        "- name: Plain\n  endpoint: https://127.0.0.1:8743/x\n  authentication: {type: bearer, value: '${env:NOPE}'}\n"
    )
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(InputError, match="NOPE"):
        await run_demo(_options(tmp_path / "out", targets_path=bad, max_events=10))
    assert "cxeb-sandbox" not in {t.name for t in threading.enumerate()} - before
    assert _children() == []


def test_cxeb_demo_command_renders_every_step_and_exits_0(tmp_path: Path) -> None:
    """`cxeb demo --events 40 --output-dir DIR` exits 0 and renders each step, the drift verdict and a summary."""
    result = CliRunner().invoke(
        app, ["demo", "--events", "40", "--output-dir", str(tmp_path / "out"), "--no-terraform"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    for heading in (
        "1. Start",
        "2. Apply",
        "3. Test",
        "4. Route 40 events",
        "5. Dead letters",
        "6. Export",
        "7. Drift",
    ):
        assert heading in result.output
    assert "would exit 2" in result.output
    assert "audit verify: OK" in result.output
    assert "Demo finished in" in result.output
    assert (tmp_path / "out" / "terraform" / "terraform.tfstate").is_file()


def test_cxeb_demo_refuses_a_bad_event_count() -> None:
    """`--events 0` is an input error (exit 2), before anything starts."""
    result = CliRunner().invoke(app, ["demo", "--events", "0"])
    assert result.exit_code == 2
