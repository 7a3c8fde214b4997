"""``cxeb router tail``: deliveries as they happen, as ``stripe listen`` shows webhooks.

Reads the router's ``GET /v1/deliveries/live`` stream (NDJSON, see ``router.live``) and prints one line
per delivery attempt: time, target, event id, status, latency and attempt number; and a ``DEAD`` line
when a delivery is dead-lettered (why, after how many attempts). ``--output json``
prints the router's JSON lines unchanged, for scripts. Runs until interrupted or until the router stops.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.router_connection import CA_BUNDLE, INGEST_KEY, OUTPUT, URL, Connection, call_router

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RouterClient


def describe(item: dict[str, Any]) -> str:
    """One attempt (or a dead letter) as a line for people: time, target, event id, answer, latency, attempt."""
    at = datetime.fromisoformat(item["at"]).astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    answer = str(item["status"]) if item.get("status") is not None else (item.get("error") or "no answer")
    if item.get("type") == "dead":
        return (
            f"{at}  DEAD  {item['target']}  {item['eventId']}  {item['reason']} after {item['attempts']} attempt(s)"
            f", the last: {answer}"
        )
    mark = "ok  " if item.get("outcome") == "success" else "FAIL"
    return (
        f"{at}  {mark}  {item['target']}  {item['eventId']}  {answer}  {float(item['latencyMs']):.1f} ms"
        f"  attempt {item['attempt']}"
    )


def tail(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = typer.Option(
        None, "--target", metavar="TARGET", help="Only this target's deliveries (name or id)."
    ),
    failed: bool = typer.Option(False, "--failed", help="Only failed attempts."),
    output: render.OutputFormat = OUTPUT,
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
) -> None:
    """Show deliveries live as the router attempts them (time, target, event id, status, latency, attempt)."""

    def show(item: dict[str, Any]) -> None:
        if item.get("type") == "hello":
            named = item.get("target") or target  # the router answers with the name of a target given by id
            scope = f" of {named}" if named else ""
            render.info(f"following {'failed ' if failed else ''}deliveries{scope} (Ctrl-C to stop)")
            return
        if item.get("type") == "dropped":
            render.warn(f"{item.get('count')} attempt(s) not shown: this terminal read slower than they came")
            return
        text = json.dumps(item, separators=(",", ":")) if output is render.OutputFormat.JSON else describe(item)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    async def operation(client: RouterClient) -> None:
        async for item in client.deliveries_live(target=target, failed=failed):
            show(item)

    call_router(Connection(url, ingest_key, ca_bundle), operation)
    render.info("the router ended the stream (it is stopping)")


def register(router_app: typer.Typer) -> None:
    """Add ``tail`` to the ``router`` group."""
    router_app.command("tail")(tail)
