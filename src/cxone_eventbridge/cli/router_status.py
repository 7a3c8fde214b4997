"""``cxeb router status``: per target delivered, failed, retries, p50/p99 and circuit; the queue's depths."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.circuit_notes import circuit_note, hold_note
from cxone_eventbridge.cli.router_connection import CA_BUNDLE, INGEST_KEY, OUTPUT, URL, Connection, call_router, show

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RouterClient


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _latency(row: dict[str, Any]) -> str:
    """p50/p99 in one column: with two, the table left a target name 7 of 80 columns, cut mid-word."""
    p50, p99 = row.get("p50Ms"), row.get("p99Ms")
    return "-" if p50 is None and p99 is None else f"{_ms(p50)}/{_ms(p99)}"


def _status_tables(data: dict[str, Any]) -> None:
    queue = data.get("queue", {})
    pending = queue.get("pendingByTarget", {})
    rows = [
        [
            t["target"],
            f"{t['delivered']:,}",
            f"{t['failed']:,}",
            f"{t['retries']:,}",
            _latency(t),
            t["circuit"],
            f"{pending.get(t['target'], 0):,}",
        ]
        for t in data.get("targets", [])
    ]
    columns = ["TARGET", "DELIVERED", "FAILED", "RETRIES", "P50/P99 MS", "CIRCUIT", "PENDING"]
    render.print_table("Targets", columns, rows, fold=("TARGET",))
    now = time.time()
    for row in data.get("targets", []):
        for note in filter(None, (hold_note(row), circuit_note(row, now=now))):
            render.info(note)  # why a target is held, why a circuit is open and when it probes next
    depths = [queue.get(k) for k in ("pending", "leased", "delivered", "dead")]
    render.print_table(
        "Queue", ["PENDING", "LEASED", "DELIVERED", "DEAD"], [[f"{d:,}" if d is not None else "-" for d in depths]]
    )


def status(
    target: str | None = typer.Option(None, "--target", metavar="TARGET", help="Only this target (name or id)."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Per target: delivered, failed, retries, p50/p99 latency, circuit and pause; and the queue's depths."""

    async def operation(client: RouterClient) -> dict[str, Any]:
        return await client.status(target=target)

    show(call_router(Connection(url, ingest_key, ca_bundle), operation), output, _status_tables)


def register(router_app: typer.Typer) -> None:
    """Add ``status`` to the ``router`` group."""
    router_app.command("status")(status)
