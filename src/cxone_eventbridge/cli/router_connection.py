"""What every ``cxeb router`` command that talks to a running router shares: where it is, how to authenticate,
one ``call_router`` skeleton that turns the client's errors into a message with what to do next, and one
way to show an answer (``show``: the command's table, or JSON).

Settings come from ``CXEB_ROUTER_URL`` / ``CXEB_INGEST_KEY`` unless ``--url`` / ``--ingest-key`` say otherwise.
Heavy imports (pydantic, httpx through the client) happen inside ``call_router``, when a command runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.runner import run
from cxone_eventbridge.defaults import DEFAULT_ROUTER_URL

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RetryNotice, RouterClient

T = TypeVar("T")

URL = typer.Option(
    None, "--url", envvar="CXEB_ROUTER_URL", show_default=DEFAULT_ROUTER_URL, help="The router's base URL."
)
INGEST_KEY = typer.Option(
    None, "--ingest-key", envvar="CXEB_INGEST_KEY", show_default=False, help="The router's bearer ingest key."
)
CA_BUNDLE = typer.Option(None, "--ca-bundle", help="CA certificates to trust for an https router URL.")
OUTPUT = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json.")


@dataclass(frozen=True)
class Connection:
    """Where the router is and how to authenticate to it, as the command line and the environment say."""

    url: str | None
    ingest_key: str | None
    ca_bundle: Path | None


def call_router(
    connection: Connection,
    operation: Callable[[RouterClient], Awaitable[T]],
    *,
    retries: bool = False,
    on_retry: Callable[[RetryNotice], None] | None = None,
) -> T:
    """Run ``operation`` with a client of the router; its errors become a message with what to do next.

    ``retries`` is for ``send``: an interactive question (status, dead letters) is answered at once.
    """
    from pydantic import SecretStr

    from cxone_eventbridge.cli.profile_choice import read_cli_settings
    from cxone_eventbridge.config import RouterSettings
    from cxone_eventbridge.exceptions import ConfigurationError, RouterRefusedError, RouterUnreachableError
    from cxone_eventbridge.router.api_client import RetrySchedule, RouterClient

    try:
        settings = read_cli_settings(RouterSettings)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    url = (connection.url or settings.router_url).rstrip("/")
    key = SecretStr(connection.ingest_key) if connection.ingest_key else settings.ingest_key

    async def main() -> T:
        client = RouterClient(
            url,
            ingest_key=key,
            ca_bundle=connection.ca_bundle,
            retry=RetrySchedule() if retries else RetrySchedule(max_attempts=1),
            on_retry=on_retry or warn_retry,
        )
        async with client:
            try:
                return await operation(client)
            except RouterUnreachableError as exc:
                raise RouterUnreachableError(
                    f"{exc.message}\nhint: cannot reach the router at {url}: is it running? "
                    "`cxeb router serve` listens there by default; --url or CXEB_ROUTER_URL names another",
                    url=url,
                ) from exc
            except RouterRefusedError as exc:
                if exc.status != 401:
                    raise
                given = "the ingest key given was refused" if key else "no ingest key was given"
                raise RouterRefusedError(
                    f"{exc.message}\nhint: {given}; pass the key `cxeb router serve` was started with, "
                    "as --ingest-key KEY or in CXEB_INGEST_KEY",
                    status=401,
                    code=exc.code,
                ) from exc

    return run(main())


def warn_retry(notice: RetryNotice) -> None:
    render.warn(
        f"{notice.reason}; retrying in {notice.delay_s:.1f} s (attempt {notice.next_attempt} of {notice.max_attempts})"
    )


def show(data: T, output: render.OutputFormat, table: Callable[[T], None], *, json_data: Any = None) -> None:
    """JSON (the API's shape; its times are ISO-8601) or the command's table."""
    if output is render.OutputFormat.JSON:
        render.print_json(data if json_data is None else json_data)
    else:
        table(data)
