"""`cxeb trigger EVENT_TYPE`: send one realistic synthetic contact-center event to a router.

As ``stripe trigger`` does for Stripe events: the event comes from the demo's catalogue
(``demo/catalogue.py``: ``cxeb trigger --list``), stamped now, with a fresh id, and goes to the router's
ingest API (``CXEB_ROUTER_URL``, ``CXEB_INGEST_KEY``) at the type's priority unless ``--priority`` says.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.router_connection import CA_BUNDLE, INGEST_KEY, OUTPUT, URL, Connection, call_router

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RouterClient


def synthetic_event(event_type: str, *, tenant: str, seed: int | None, now: datetime) -> dict[str, Any]:
    """One event of ``event_type`` from the catalogue; exits 2 for an unknown type."""
    from cxone_eventbridge.demo.catalogue import BY_NAME, EVENT_TYPES, make_event

    kind = BY_NAME.get(event_type)
    if kind is None:
        render.fail(
            f"unknown event type {event_type!r}; `cxeb trigger --list` shows the {len(EVENT_TYPES)} types",
            render.EXIT_INVALID_INPUT,
        )
    rng = random.Random(seed)  # noqa: S311 -- synthetic data, not security
    event_id = f"evt-{uuid.UUID(int=rng.getrandbits(128), version=4).hex}"
    return make_event(rng, event_type=kind, event_id=event_id, timestamp=now, tenant_id=tenant)


def trigger(  # noqa: PLR0917 -- typer maps each option to a parameter
    event_type: str | None = typer.Argument(None, help="call.abandoned, contact.queued, ... (--list shows all)."),
    list_types: bool = typer.Option(False, "--list", help="List the event types and exit."),
    tenant: str = typer.Option("tenant-demo", "--tenant", help="The event's tenantId."),
    priority: int | None = typer.Option(None, "--priority", min=0, max=9, help="0-9; default: the type's."),
    seed: int | None = typer.Option(None, "--seed", help="Make the event reproducible (same contact, agent...)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the event; send nothing."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Send one synthetic event of EVENT_TYPE to a router (or list the types with --list)."""
    from cxone_eventbridge.demo.catalogue import EVENT_TYPES

    if list_types:
        if output is render.OutputFormat.JSON:
            render.print_json(
                [{"eventType": t.name, "priority": t.priority, "description": t.description} for t in EVENT_TYPES]
            )
        else:
            render.print_table(
                "Event types",
                ["event type", "priority", "what happened"],
                [[t.name, t.priority, t.description] for t in EVENT_TYPES],
            )
        return
    if event_type is None:
        render.fail("name an event type (cxeb trigger --list shows them)", render.EXIT_INVALID_INPUT)
    event = synthetic_event(event_type, tenant=tenant, seed=seed, now=datetime.now(UTC))
    if dry_run:
        render.print_json(event)
        return
    send_priority = event["priority"] if priority is None else priority

    async def operation(client: RouterClient) -> tuple[str, list[str]]:
        return client.url, await client.ingest([event], priority=send_priority)

    where, ids = call_router(Connection(url, ingest_key, ca_bundle), operation)
    if output is render.OutputFormat.JSON:
        render.print_json({"accepted": len(ids), "priority": send_priority, "event": event})
        return
    render.success(f"sent {event['eventType']} {event['id']} to {where} (priority {send_priority})")


def register(app: typer.Typer) -> None:
    """Add ``cxeb trigger`` to the root app."""
    app.command("trigger")(trigger)
