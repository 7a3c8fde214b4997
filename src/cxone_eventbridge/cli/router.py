"""`cxeb router`: run the router (`serve`) and talk to a running one (`send`, `status`, `dlq`, `enable`).

Option parsing and rendering only. The talking commands share one skeleton (``call_router``): settings from
``CXEB_ROUTER_URL`` / ``CXEB_INGEST_KEY`` unless ``--url`` / ``--ingest-key`` say otherwise, one
``router.api_client.RouterClient``, its errors turned into a message with what to do next. ``serve``
gathers its options into ``ServeOptions`` and hands them to ``cli.router_serve.serve_router``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.circuit_notes import circuit_note
from cxone_eventbridge.cli.confirm import confirm_deletion
from cxone_eventbridge.cli.runner import run
from cxone_eventbridge.defaults import (
    DEFAULT_AUDIT_LOG,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_ROUTER_PORT,
    DEFAULT_ROUTER_URL,
)
from cxone_eventbridge.wire import MAX_EVENT_BYTES

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RetryNotice, RouterClient
    from cxone_eventbridge.router.event_sender import SendSummary

T = TypeVar("T")

router_commands = typer.Typer(
    help="Run the event router and talk to a running one.", no_args_is_help=True, rich_markup_mode=None
)
dlq_commands = typer.Typer(help="List, replay or purge dead letters.", no_args_is_help=True, rich_markup_mode=None)
router_commands.add_typer(dlq_commands, name="dlq")

URL = typer.Option(
    None, "--url", envvar="CXEB_ROUTER_URL", show_default=DEFAULT_ROUTER_URL, help="The router's base URL."
)
INGEST_KEY = typer.Option(
    None, "--ingest-key", envvar="CXEB_INGEST_KEY", show_default=False, help="The router's bearer ingest key."
)
CA_BUNDLE = typer.Option(None, "--ca-bundle", help="CA certificates to trust for an https router URL.")
OUTPUT = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json.")
TARGET_FILTER = typer.Option(None, "--target", metavar="NAME", help="Only this target's dead letters.")
DELIVERY_IDS = typer.Option(None, "--id", metavar="DELIVERY_ID", help="A delivery id (repeatable).")


# -- the skeleton every talking command shares -------------------------------------------------------------


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

    from cxone_eventbridge.config import RouterSettings, read_settings
    from cxone_eventbridge.exceptions import ConfigurationError, RouterRefusedError, RouterUnreachableError
    from cxone_eventbridge.router.api_client import RetrySchedule, RouterClient

    try:
        settings = read_settings(RouterSettings)
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
            on_retry=on_retry or _warn_retry,
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


def _warn_retry(notice: RetryNotice) -> None:
    render.warn(
        f"{notice.reason}; retrying in {notice.delay_s:.1f} s (attempt {notice.next_attempt} of {notice.max_attempts})"
    )


def _show(data: T, output: render.OutputFormat, table: Callable[[T], None], *, json_data: Any = None) -> None:
    """JSON (the API's shape, times as ISO-8601) or the command's table."""
    if output is render.OutputFormat.JSON:
        render.print_json(iso_times(data if json_data is None else json_data))
    else:
        table(data)


TIME_KEYS = frozenset(
    {"acceptedAt", "deadAt", "oldestPendingAt", "lastAttemptAt", "circuitSince", "circuitUntil", "at"}
)


def iso_times(data: Any) -> Any:
    """``data`` with the router's Unix-seconds times (``acceptedAt``, ``deadAt``...) as ISO-8601 UTC strings."""
    if isinstance(data, dict):
        return {
            key: _iso(value) if key in TIME_KEYS and isinstance(value, int | float) else iso_times(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [iso_times(item) for item in data]
    return data


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


# -- send ---------------------------------------------------------------------------------------------------


@router_commands.command("send")
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
        _warn_retry(notice)
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


# -- status, dead letters, enable ---------------------------------------------------------------------------


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _status_tables(data: dict[str, Any]) -> None:
    queue = data.get("queue", {})
    pending = queue.get("pendingByTarget", {})
    rows = [
        [
            t["target"],
            f"{t['delivered']:,}",
            f"{t['failed']:,}",
            f"{t['retries']:,}",
            _ms(t.get("p50Ms")),
            _ms(t.get("p99Ms")),
            t["circuit"],
            f"{pending.get(t['target'], 0):,}",
        ]
        for t in data.get("targets", [])
    ]
    columns = ["TARGET", "DELIVERED", "FAILED", "RETRIES", "P50 MS", "P99 MS", "CIRCUIT", "PENDING"]
    render.print_table("Targets", columns, rows, fold=("TARGET",))
    now = time.time()
    for note in filter(None, (circuit_note(t, now=now) for t in data.get("targets", []))):
        render.info(note)  # why a circuit is open and when it probes next
    depths = [queue.get(k) for k in ("pending", "leased", "delivered", "dead")]
    render.print_table(
        "Queue", ["PENDING", "LEASED", "DELIVERED", "DEAD"], [[f"{d:,}" if d is not None else "-" for d in depths]]
    )


@router_commands.command("status")
def status(
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Per target: delivered, failed, retries, p50/p99 latency and circuit; and the queue's depths."""

    async def operation(client: RouterClient) -> dict[str, Any]:
        return await client.status()

    _show(call_router(Connection(url, ingest_key, ca_bundle), operation), output, _status_tables)


@dataclass(frozen=True)
class DeadLetters:
    """One page of dead letters, and how many there are in all when the router says (no --target)."""

    items: list[dict[str, Any]]
    total: int | None


def _dead_letter_lines(page: DeadLetters) -> None:
    """One line per dead letter, whole ids first, then what happened (wraps only the last error)."""
    if not page.items:
        render.info("no dead letters")
        return
    rows = [
        [
            i["deliveryId"],
            i["target"],
            f"{i['attempts']:,}",
            f"{i['reason']} {i['lastStatus'] or ''}".strip(),
            i["lastError"] or "",
        ]
        for i in page.items
    ]
    render.print_table(None, ["DELIVERY ID", "TARGET", "TRIES", "REASON", "LAST ERROR"], rows, fold=("LAST ERROR",))
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
    _show(page, output, _dead_letter_lines, json_data=page.items)


def _act_on_dead_letters(
    verb: str,
    operation: Callable[[RouterClient], Awaitable[int]],
    *,
    connection: Connection,
    output: render.OutputFormat,
) -> None:
    """Replay or purge; show the count. ``verb`` is the past tense, also the count's key in the answer."""
    count = call_router(connection, operation)
    _show(count, output, lambda n: render.success(f"{n:,} dead letter(s) {verb}"), json_data={verb: count})


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


@router_commands.command("enable")
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


# -- serve and migrate --------------------------------------------------------------------------------------

QUEUE_URL = typer.Option(
    None,
    "--queue",
    envvar="CXEB_QUEUE_URL",
    help="The queue: sqlite:///PATH (one router) or postgresql://USER@HOST/DB[?schema=NAME] (several).",
)
DB = typer.Option(
    None,
    "--db",
    show_default=".cxeb/router/<targets file>-<hash>.db",
    help="The SQLite queue file when --queue is not given; one router at a time may use it.",
)


@router_commands.command("migrate")
def migrate_command(queue: str | None = QUEUE_URL, db: Path | None = DB) -> None:
    """Create or upgrade the queue's schema to this version's (PostgreSQL routers refuse to start until then)."""
    from cxone_eventbridge.cli.router_serve import default_queue_path
    from cxone_eventbridge.router.composition import RouterConfig, migrate_queue, sqlite_url

    config = RouterConfig(queue_url=queue or sqlite_url(db if db is not None else default_queue_path(None)))
    version = run(migrate_queue(config))
    render.info(f"the {config.backend} queue's schema is at version {version}")


@router_commands.command("serve")
def serve(  # noqa: PLR0917 -- typer maps each option to a parameter
    host: str = typer.Option("127.0.0.1", "--host", help="Listen address; beyond loopback an ingest key is required."),
    port: int = typer.Option(DEFAULT_ROUTER_PORT, "--port", min=0, max=65535, help="Listen port."),
    db: Path | None = DB,
    queue: str | None = QUEUE_URL,
    migrate: bool = typer.Option(False, "--migrate", help="Migrate a PostgreSQL queue's schema on start."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Router processes on this machine sharing the port (PostgreSQL queue)."
    ),
    targets: Path | None = typer.Option(None, "--targets", help="A targets file (no control-plane settings needed)."),
    from_api: bool = typer.Option(False, "--from-api", help="Sync targets from GET /api/v2/events/routes (CXONE_*)."),
    sync_interval: float = typer.Option(30.0, "--sync-interval", min=1.0, help="Seconds between --from-api syncs."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Serve ingest over HTTPS with this certificate."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="The private key of --tls-cert."),
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = typer.Option(None, "--ca-bundle", help="Extra CA certificates to trust for targets."),
    allow_private: list[str] | None = typer.Option(
        None,
        "--allow-private",
        metavar="CIDR",
        help="Let deliveries reach this private or loopback range despite the SSRF guard (repeatable).",
    ),
    audit_log: Path = typer.Option(
        DEFAULT_AUDIT_LOG, "--audit-log", envvar="CXEB_AUDIT_LOG", help="The hash-chained audit log."
    ),
    no_audit_log: bool = typer.Option(False, "--no-audit-log", help="Do not write an audit log."),
    drain_deadline: float = typer.Option(30.0, "--drain-deadline", min=0.0, help="Seconds to drain on SIGTERM."),
    max_request_bytes: int = typer.Option(
        16 << 20, "--max-request-bytes", min=MAX_EVENT_BYTES, help="The largest ingest request accepted."
    ),
    otel: bool = typer.Option(
        False, "--otel", help="OpenTelemetry spans per ingest and attempt, traceparent on webhooks (the otel extra)."
    ),
    max_connections: int = typer.Option(
        DEFAULT_MAX_CONNECTIONS, "--max-connections", min=1, help="Open connections beyond this get 503 (per process)."
    ),
    idle_timeout: float = typer.Option(
        DEFAULT_IDLE_TIMEOUT_S, "--idle-timeout", min=0.1, help="Seconds a connection may sit idle or send headers."
    ),
    body_timeout: float = typer.Option(
        DEFAULT_BODY_TIMEOUT_S, "--body-timeout", min=0.1, help="Seconds a request's body may take to arrive (408)."
    ),
) -> None:
    """Run the router: HTTP ingest, durable queue, deliveries, metrics and audit log in one process.

    SIGTERM or SIGINT stops accepting, drains within --drain-deadline and exits 0; anything accepted but
    not yet delivered stays in the queue for the next start.
    """
    from pydantic import SecretStr

    from cxone_eventbridge.cli.router_serve import ServeOptions, default_queue_path, serve_router, serve_workers
    from cxone_eventbridge.exceptions import ConfigurationError
    from cxone_eventbridge.router.composition import RouterConfig, sqlite_url

    if (targets is None) == (not from_api):
        render.fail("give exactly one of --targets FILE or --from-api", render.EXIT_INVALID_INPUT)
    options = ServeOptions(
        host=host,
        port=port,
        queue_url=queue or sqlite_url(db if db is not None else default_queue_path(targets)),
        migrate=migrate,
        targets=targets,
        from_api=from_api,
        sync_interval_s=sync_interval,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ingest_key=SecretStr(ingest_key) if ingest_key else None,
        ca_bundle=ca_bundle,
        allow_private=tuple(allow_private or ()),
        audit_log=None if no_audit_log else audit_log,
        drain_deadline_s=drain_deadline,
        max_request_bytes=max_request_bytes,
        max_connections=max_connections,
        idle_timeout_s=idle_timeout,
        body_timeout_s=body_timeout,
        workers=workers,
        otel=otel,
    )
    if workers == 1:
        run(serve_router(options), fast_loop=True)
        return
    try:
        backend = RouterConfig(queue_url=options.queue_url).backend
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    if backend != "postgresql":
        render.fail(
            "--workers above 1 needs a PostgreSQL --queue (a SQLite file has one router)", render.EXIT_INVALID_INPUT
        )
    if port == 0:
        render.fail("--workers above 1 needs a fixed --port: the workers share it", render.EXIT_INVALID_INPUT)
    raise typer.Exit(serve_workers(options))


def register(app: typer.Typer) -> None:
    """Add the ``router`` group to the root app."""
    from cxone_eventbridge.cli import router_tail

    router_tail.register(router_commands)
    app.add_typer(router_commands, name="router")
