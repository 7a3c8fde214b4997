"""``cxeb router send``: events from a JSON-lines file or stdin to a running router, each at its own priority."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.router_connection import (
    CA_BUNDLE,
    INGEST_KEY,
    OUTPUT,
    URL,
    Connection,
    call_router,
    warn_retry,
)

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RetryNotice, RouterClient
    from cxone_eventbridge.router.event_sender import SendSummary


def send(  # noqa: PLR0917 -- typer maps each option to a parameter
    file: str = typer.Argument(..., metavar="FILE|-", help="A JSON-lines file of events, or - for stdin."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    priority: int = typer.Option(
        5, "--priority", min=0, max=9, help="For events without a priority field: 0 (first) to 9 (last)."
    ),
    batch_size: int = typer.Option(500, "--batch-size", min=1, max=10_000, help="Events per POST."),
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Send events (one JSON object per line) to a running router, each at its own "priority".

    Lines are checked locally first; bad ones are reported by number and skipped. POSTs are retried on
    connection errors, 429 and 5xx (an id is added to events without one, so a retry never duplicates).
    Exit 1 if any line was rejected.
    """
    try:
        stream: TextIO = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115 -- closed below
    except OSError as exc:
        render.fail(f"cannot read {file}: {exc.strerror or exc}", render.EXIT_INVALID_INPUT)
    total = None if file == "-" else _count_lines(Path(file))

    async def operation(client: RouterClient) -> SendSummary:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from cxone_eventbridge.router.event_sender import EventSender

        columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=render.stderr, transient=True) as bar:
            task = bar.add_task("send", total=total)
            sender = EventSender(
                client,
                default_priority=priority,
                batch_size=batch_size,
                on_rejected=lambda where, message: render.warn(f"{where}: {message}"),
                on_progress=lambda summary: bar.update(task, completed=summary.lines),
            )
            retries.append(sender.count_retry)
            return await sender.send(stream)

    retries: list[Callable[[RetryNotice], None]] = []

    def on_retry(notice: RetryNotice) -> None:
        warn_retry(notice)
        for count in retries:
            count(notice)

    try:
        summary = call_router(Connection(url, ingest_key, ca_bundle), operation, retries=True, on_retry=on_retry)
    finally:
        if stream is not sys.stdin:
            stream.close()
    if output is render.OutputFormat.JSON:
        render.print_json(summary.to_dict())
    rate = summary.accepted / summary.seconds if summary.seconds > 0 else 0.0
    priorities = ", ".join(f"{n:,} at {p}" for p, n in sorted(summary.by_priority.items()))
    render.info(
        f"{summary.accepted:,} accepted, {summary.rejected:,} rejected "
        f"({len(summary.rejected_locally):,} locally, {len(summary.rejected_by_router):,} by the router) "
        f"of {summary.lines:,} line(s) in {summary.seconds:.2f} s ({rate:,.0f} events/s, "
        f"{summary.retries:,} retried POST(s)); by priority: {priorities or 'none'}"
    )
    if summary.rejected:
        raise typer.Exit(render.EXIT_ERROR)


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def register(router_app: typer.Typer) -> None:
    """Add ``send`` to the ``router`` group."""
    router_app.command("send")(send)
