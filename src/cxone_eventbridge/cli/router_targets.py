"""``cxeb router enable``: steer one target of a running router."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.router_connection import CA_BUNDLE, INGEST_KEY, URL, Connection, call_router

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RouterClient


def enable(
    target: str = typer.Argument(..., metavar="NAME", help="The target's name, as the router knows it."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
) -> None:
    """Re-enable a target that the router disabled after its endpoint answered 410 Gone."""

    async def operation(client: RouterClient) -> None:
        await client.enable(target)

    call_router(Connection(url, ingest_key, ca_bundle), operation)
    render.success(f"target {target} enabled")


def register(router_app: typer.Typer) -> None:
    """Add the target commands to the ``router`` group."""
    router_app.command("enable")(enable)
