"""``cxeb router tail``: deliveries as they happen, as ``stripe listen`` shows webhooks.

Reads the router's ``GET /v1/deliveries/live`` stream (NDJSON, see ``router.live``) and prints one line
per delivery attempt: time, target, event id, status, latency and attempt number. ``--output json``
prints the router's JSON lines unchanged, for scripts. Runs until interrupted or until the router stops.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import SecretStr

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.runner import run
from cxone_eventbridge.config import RouterSettings, read_settings
from cxone_eventbridge.exceptions import APIConnectionError, ConfigurationError, status_error_class

LIVE_PATH = "/v1/deliveries/live"


def describe(item: dict[str, Any]) -> str:
    """One attempt as a line for people: time, target, event id, answer, latency, attempt."""
    at = datetime.fromtimestamp(float(item["at"]), UTC).strftime("%H:%M:%S.%f")[:-3]
    answer = str(item["status"]) if item.get("status") is not None else (item.get("error") or "no answer")
    mark = "ok  " if item.get("outcome") == "success" else "FAIL"
    return (
        f"{at}  {mark}  {item['target']}  {item['eventId']}  {answer}  {float(item['latencyMs']):.1f} ms"
        f"  attempt {item['attempt']}"
    )


async def follow(
    url: str,
    *,
    ingest_key: SecretStr | None,
    ca_bundle: Path | None,
    target: str | None,
    failed: bool,
    on_open: Callable[[dict[str, Any]], None],
    on_item: Callable[[dict[str, Any]], None],
) -> None:
    """Read the live stream until the router ends it; ``on_open`` once connected, ``on_item`` per line."""
    headers = {"User-Agent": "cxeb-router-cli", "Accept": "application/x-ndjson"}
    if ingest_key is not None:
        headers["Authorization"] = f"Bearer {ingest_key.get_secret_value()}"
    params = {key: value for key, value in (("target", target), ("failed", "true" if failed else None)) if value}
    verify: str | bool = str(ca_bundle) if ca_bundle is not None else True
    timeout = httpx.Timeout(10.0, read=None)  # the stream is quiet while nothing is delivered
    try:
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, verify=verify, timeout=timeout, trust_env=False) as client,
            client.stream("GET", LIVE_PATH, params=params) as response,
        ):
            if response.status_code >= 400:
                await response.aread()
                message = f"the router answered {response.status_code}"
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    message += f": {response.json()['message']}"
                raise status_error_class(response.status_code)(message, status_code=response.status_code, body=None)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue  # keep-alive
                item = json.loads(line)
                if item.get("type") == "hello":
                    on_open(item)
                else:
                    on_item(item)
    except httpx.TransportError as exc:
        raise APIConnectionError(f"cannot follow the router at {url}: {exc or type(exc).__name__}") from exc


def tail(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = typer.Option(None, "--target", help="Only this target's deliveries."),
    failed: bool = typer.Option(False, "--failed", help="Only failed attempts."),
    output: render.OutputFormat = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json."),
    url: str | None = typer.Option(None, "--url", help="The router's base URL [env: CXEB_ROUTER_URL]."),
    ingest_key: str | None = typer.Option(None, "--ingest-key", help="The bearer ingest key [env: CXEB_INGEST_KEY]."),
    ca_bundle: Path | None = typer.Option(None, "--ca-bundle", help="CA certificates to trust for an https URL."),
) -> None:
    """Show deliveries live as the router attempts them (time, target, event id, status, latency, attempt)."""
    try:
        settings = read_settings(RouterSettings)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    key = SecretStr(ingest_key) if ingest_key else settings.ingest_key
    router_url = (url or settings.router_url).rstrip("/")

    def opened(_hello: dict[str, Any]) -> None:
        scope = f" of {target}" if target else ""
        render.info(f"following {'failed ' if failed else ''}deliveries{scope} at {router_url} (Ctrl-C to stop)")

    def show(item: dict[str, Any]) -> None:
        if item.get("type") == "dropped":
            render.warn(f"{item.get('count')} attempt(s) not shown: this terminal read slower than they came")
            return
        text = json.dumps(item, separators=(",", ":")) if output is render.OutputFormat.JSON else describe(item)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    stream = follow(
        router_url, ingest_key=key, ca_bundle=ca_bundle, target=target, failed=failed, on_open=opened, on_item=show
    )
    run(stream)
    render.info("the router ended the stream (it is stopping)")


def register(router_app: typer.Typer) -> None:
    """Add ``tail`` to the ``router`` group."""
    router_app.command("tail")(tail)
