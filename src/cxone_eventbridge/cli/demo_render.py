"""Rendering of ``cxeb demo``: each step of the demo as it ends, with rich.

The orchestration lives in ``cxone_eventbridge.demo``; ``cli/demo.py`` imports this module only when the
command runs, so that every other ``cxeb`` command starts without loading the whole product.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from cxone_eventbridge.cli import render, runner
from cxone_eventbridge.cli.iac_steps import summary_line
from cxone_eventbridge.demo import DemoListener, DemoOptions, DemoResult, run_demo
from cxone_eventbridge.demo import results as demo_results
from cxone_eventbridge.demo.services import ServiceUrls
from cxone_eventbridge.observe.audit import AuditVerification

DEAD_LETTERS_SHOWN = 10


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _value(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


class RichDemoListener(DemoListener):
    """Renders each demo step on stdout: a heading, then a table or a few lines."""

    def __init__(self) -> None:
        self._step = 0
        self._progress: Progress | None = None
        self._ingest_task: TaskID | None = None
        self._deliver_task: TaskID | None = None

    def _heading(self, title: str) -> None:
        self._step += 1
        render.stdout.print(Rule(f"[bold]{self._step}. {title}[/bold]", align="left"))

    def _line(self, text: str) -> None:
        render.stdout.print(text, highlight=False, markup=False)

    # -- steps ----------------------------------------------------------------------------------

    def started(self, urls: ServiceUrls) -> None:
        self._heading("Start the sandbox, two HTTPS receivers and the router on loopback")
        render.print_table(
            None,
            ["SERVER", "URL"],
            [
                ("sandbox control plane (OAuth2 + targets API)", urls.sandbox),
                ("healthy receiver", urls.healthy_receiver),
                ("flaky receiver (some 503 + Retry-After)", urls.flaky_receiver),
                ("router HTTP API (SQLite queue)", urls.router),
            ],
        )

    def applied(self, outcome: demo_results.ApplyOutcome) -> None:
        self._heading("Apply examples/targets.yaml (plan, apply, plan again)")
        for warning in outcome.warnings:
            render.warn(warning)
        self._line(summary_line(outcome.plan))
        render.print_table(
            None,
            ["ACTION", "TARGET", "ID"],
            [(step.action.value, step.name, step.target_id) for step in outcome.report.done],
        )
        again = (
            "changes remain (unexpected)" if outcome.replan_has_changes else "no changes: the sandbox matches the file"
        )
        self._line(f"Plan again: {again}.")

    def tested(self, tests: Sequence[demo_results.TargetTest]) -> None:
        self._heading("Test each target (the sandbox sends a real signed request)")
        render.print_table(
            None,
            ["TARGET", "RESULT", "STATUS", "LATENCY MS", "ERROR"],
            [
                (t.name, "passed" if t.passed else "failed", t.status_code, _ms(t.latency_ms), t.error or "")
                for t in tests
            ],
        )
        if not all(t.passed for t in tests):
            self._line("A failed test on the flaky receiver is expected: it answers some requests 503.")

    def routing_started(self, events: int, by_priority: Mapping[int, int]) -> None:
        self._heading(f"Route {events:,} events through the router's ingest API, grouped by priority")
        groups = ", ".join(f"p{priority}: {count:,}" for priority, count in by_priority.items())
        self._line(f"Priority groups (0 is the most urgent, sent first): {groups}")
        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=render.stdout,
            transient=False,
        )
        self._ingest_task = self._progress.add_task("accepted", total=events)
        self._deliver_task = self._progress.add_task("settled", total=None)
        self._progress.start()

    def progress(self, progress: demo_results.Progress) -> None:
        if self._progress is None or self._ingest_task is None or self._deliver_task is None:
            return
        self._progress.update(self._ingest_task, completed=progress.events_accepted)
        self._progress.update(
            self._deliver_task, completed=progress.deliveries_settled, total=max(progress.deliveries_queued, 1)
        )

    def close(self) -> None:
        """Stop the progress display (also on error or Ctrl-C, so the terminal is left clean)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def routed(self, ingest: demo_results.IngestSummary, deliveries: Sequence[demo_results.TargetDeliveries]) -> None:
        self.close()
        self._line(
            f"{ingest.events:,} events accepted in {ingest.requests} requests ({ingest.ingest_s:.1f} s); "
            f"{ingest.deliveries:,} deliveries delivered or dead-lettered "
            f"{ingest.settle_s:.1f} s after the first ingest."
        )
        table = Table(title="Per target (the router's GET /v1/status)", box=box.SIMPLE_HEAD)
        table.add_column("TARGET")
        table.add_column("RECEIVER")
        for column in ("QUEUED", "DELIVERED", "RETRIED", "DEAD", "P50 MS", "P99 MS"):
            table.add_column(column, justify="right", no_wrap=True)
        for d in deliveries:
            table.add_row(
                d.target,
                d.endpoint,
                f"{d.queued:,}",
                f"{d.delivered:,}",
                f"{d.retried:,}",
                f"{d.dead_lettered:,}",
                _ms(d.p50_ms),
                _ms(d.p99_ms),
            )
        render.stdout.print(table)
        self._line("RETRIED counts retries scheduled; DEAD counts deliveries dead-lettered; latency is per attempt.")

    def replayed(self, replay: demo_results.ReplayOutcome) -> None:
        self._heading("Dead letters and a replay")
        letters = replay.dead_letters
        if not letters:
            self._line("No dead letters this run (the flaky receiver was lucky).")
            return
        table = Table(
            title=f"Dead letters ({len(letters)}; the first {min(len(letters), DEAD_LETTERS_SHOWN)} shown)",
            box=box.SIMPLE_HEAD,
        )
        for column in ("EVENT", "TARGET", "ATTEMPTS", "REASON", "LAST STATUS"):
            table.add_column(column, no_wrap=column != "TARGET")
        for d in letters[:DEAD_LETTERS_SHOWN]:
            table.add_row(d["eventId"], d["target"], str(d["attempts"]), d["reason"], str(d["lastStatus"]))
        render.stdout.print(table)
        self._line(
            f"Replayed {replay.replayed}: {replay.delivered} delivered this time, "
            f"{replay.dead_again} dead-lettered again."
        )

    def exported(self, terraform: demo_results.TerraformOutcome) -> None:
        self._heading("Export the targets for Terraform")
        export = terraform.export
        self._line(
            f"Wrote {export.state_path} (format 4, serial {export.identity.serial}) and {export.config_path} "
            f"({export.targets} targets, with import blocks)."
        )
        if terraform.state_list is not None:
            self._line("$ terraform state list -state=" + str(export.state_path))
            for address in terraform.state_list:
                self._line(f"  {address}")
        elif terraform.state_list_error is not None:
            render.warn(f"terraform state list failed: {terraform.state_list_error}")
        else:
            self._line("terraform is not on PATH; `terraform state list` skipped.")

    def drifted(self, drift: demo_results.DriftOutcome) -> None:
        self._heading("Drift after an out-of-band change")
        self._line(f"Changed {drift.target!r} through the API ({drift.changed_field}), not through the targets file.")
        rows = [
            (
                item.kind.value,
                item.name,
                "\n".join(f"{c.path}: {_value(c.before)} -> {_value(c.after)}" for c in item.changes),
            )
            for item in drift.report.items
        ]
        render.print_table(None, ["DRIFT", "TARGET", "CHANGES"], rows)
        self._line(f"Drift detected: `cxeb drift --state {drift.state_path}` would exit {drift.exit_code}.")

    def verified(self, audit: AuditVerification) -> None:
        self._heading("Verify the audit log's hash chain")
        verdict = "OK" if audit.ok else f"BROKEN ({audit.problem})"
        files = ", ".join(str(f) for f in audit.files)
        self._line(f"audit verify: {verdict}: {audit.records:,} records in {files}.")


class _Rendering:
    """The listener as a context manager, so its progress display stops on any way out."""

    def __init__(self, listener: RichDemoListener) -> None:
        self.listener = listener

    def __enter__(self) -> RichDemoListener:
        return self.listener

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.listener.close()


def _summary(result: DemoResult, output_dir: Path) -> None:
    delivered = sum(d.delivered for d in result.deliveries)
    dead = sum(d.dead_lettered for d in result.deliveries)
    render.stdout.print(Rule("[bold]Done[/bold]", align="left"))
    message = (
        f"Demo finished in {result.elapsed_s:.1f} s: {result.ingest.events:,} events, {delivered:,} deliveries "
        f"delivered, {dead:,} dead-lettered ({result.replay.delivered} recovered by the replay). "
        f"Artifacts are in {output_dir}/."
    )
    render.stdout.print(Text(message, style="green"))


def run_rendered(options: DemoOptions, output_dir: Path) -> None:
    """Run the demo, rendering each step as it ends, then the summary."""
    with _Rendering(RichDemoListener()) as listener:
        result = runner.run(run_demo(options, listener))
    _summary(result, output_dir)
