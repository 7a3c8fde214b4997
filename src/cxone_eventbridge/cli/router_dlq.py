"""``cxeb router dlq list|replay|purge``: a running router's dead letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.confirm import confirm_deletion
from cxone_eventbridge.cli.router_connection import CA_BUNDLE, INGEST_KEY, OUTPUT, URL, Connection, call_router, show

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RouterClient

dlq_commands = typer.Typer(help="List, replay or purge dead letters.", no_args_is_help=True, rich_markup_mode=None)
TARGET_FILTER = typer.Option(None, "--target", metavar="TARGET", help="Only this target's dead letters (name or id).")
DELIVERY_IDS = typer.Option(None, "--id", metavar="DELIVERY_ID", help="A delivery id (repeatable).")


@dataclass(frozen=True)
class DeadLetters:
    """One page of dead letters, and how many there are in all when the router says (no --target)."""

    items: list[dict[str, Any]]
    total: int | None


def _dead_letter_lines(page: DeadLetters) -> None:
    """One line per dead letter, whatever the terminal's width: the whole id first, then tries, reason,
    target and last error. Aligned text rather than a table: a table squeezed into 80 columns would cut
    the id or fold it over lines; a line longer than the terminal is wrapped by the terminal, not by us,
    so it stays one line to copy, grep or cut."""
    if not page.items:
        render.info("no dead letters")
        return
    rows = [["DELIVERY ID", "TRIES", "REASON", "TARGET", "LAST ERROR"]] + [
        [
            i["deliveryId"],
            f"{i['attempts']:,}",
            f"{i['reason']} {i['lastStatus'] or ''}".strip(),
            i["target"],
            " ".join((i["lastError"] or "").split()),  # one line even when the error text has newlines
        ]
        for i in page.items
    ]
    render.print_aligned(rows)
    shown, total = len(page.items), page.total
    if total is not None and total > shown:
        render.info(f"{shown:,} of {total:,} dead letters, newest first (--limit shows more)")
    else:
        render.info(f"{shown:,} dead letter(s), newest first")


@dlq_commands.command("list")
def dlq_list(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = TARGET_FILTER,
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many, newest first."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """The most recent dead letters, newest first (JSON: every field, with the event id and times)."""

    async def operation(client: RouterClient) -> DeadLetters:
        answer = await client.dead_letters(target=target, limit=limit)
        items = list(answer.get("items", []))
        total = answer.get("total")
        if total is None and target is None and len(items) == limit:
            total = (await client.status()).get("queue", {}).get("dead")
        return DeadLetters(items, total if isinstance(total, int) else None)

    page = call_router(Connection(url, ingest_key, ca_bundle), operation)
    show(page, output, _dead_letter_lines, json_data=page.items)


def _act_on_dead_letters(
    verb: str,
    operation: Callable[[RouterClient], Awaitable[int]],
    *,
    connection: Connection,
    output: render.OutputFormat,
) -> None:
    """Replay or purge; show the count. ``verb`` is the past tense, also the count's key in the answer."""
    count = call_router(connection, operation)
    show(count, output, lambda n: render.success(f"{n:,} dead letter(s) {verb}"), json_data={verb: count})


@dlq_commands.command("replay")
def dlq_replay(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = TARGET_FILTER,
    ids: list[str] | None = DELIVERY_IDS,
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Make dead letters pending again (all, a target's, or the named ones)."""

    async def operation(client: RouterClient) -> int:
        return await client.replay(target=target, delivery_ids=ids)

    _act_on_dead_letters("replayed", operation, connection=Connection(url, ingest_key, ca_bundle), output=output)


@dlq_commands.command("purge")
def dlq_purge(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = TARGET_FILTER,
    ids: list[str] | None = DELIVERY_IDS,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Delete dead letters for good (all, a target's, or the named ones). Asks first; --yes without a terminal."""
    what = f"the dead letters of {target}" if target else "the named dead letters" if ids else "ALL dead letters"
    confirm_deletion(f"Delete {what}?", yes=yes, refusal=f"not purging {what}")

    async def operation(client: RouterClient) -> int:
        return await client.purge(target=target, delivery_ids=ids)

    _act_on_dead_letters("purged", operation, connection=Connection(url, ingest_key, ca_bundle), output=output)


def register(router_app: typer.Typer) -> None:
    """Add the ``dlq`` group to the ``router`` group."""
    router_app.add_typer(dlq_commands, name="dlq")
