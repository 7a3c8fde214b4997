"""``cxeb router serve`` and ``cxeb router migrate``: their options; ``cli.router_serve`` does the running."""

from __future__ import annotations

from pathlib import Path

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.router_config import SERVE_CONFIG, audit_log_off
from cxone_eventbridge.cli.router_connection import INGEST_KEY
from cxone_eventbridge.cli.runner import run
from cxone_eventbridge.defaults import (
    DEFAULT_AUDIT_LOG,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_ROUTER_PORT,
)
from cxone_eventbridge.wire import MAX_EVENT_BYTES

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


def migrate_command(queue: str | None = QUEUE_URL, db: Path | None = DB) -> None:
    """Create or upgrade the queue's schema to this version's (PostgreSQL routers refuse to start until then)."""
    from cxone_eventbridge.cli.router_serve import default_queue_path
    from cxone_eventbridge.router.composition import RouterConfig, migrate_queue, sqlite_url

    config = RouterConfig(queue_url=queue or sqlite_url(db if db is not None else default_queue_path(None)))
    version = run(migrate_queue(config))
    render.info(f"the {config.backend} queue's schema is at version {version}")


def serve(  # noqa: PLR0917 -- typer maps each option to a parameter
    ctx: typer.Context,
    config: Path | None = SERVE_CONFIG,  # eager: the file's values become the defaults of the options below
    host: str = typer.Option("127.0.0.1", "--host", help="Listen address; beyond loopback an ingest key is required."),
    port: int = typer.Option(DEFAULT_ROUTER_PORT, "--port", min=0, max=65535, help="Listen port."),
    db: Path | None = DB,
    queue: str | None = QUEUE_URL,
    migrate: bool = typer.Option(False, "--migrate/--no-migrate", help="Migrate a PostgreSQL queue's schema on start."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Router processes on this machine sharing the port (PostgreSQL queue)."
    ),
    targets: Path | None = typer.Option(None, "--targets", help="A targets file (no control-plane settings needed)."),
    from_api: bool = typer.Option(
        False, "--from-api/--no-from-api", help="Sync targets from GET /api/v2/events/routes (CXONE_*)."
    ),
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
    no_audit_log: bool = typer.Option(
        False, "--no-audit-log", help="Do not write an audit log (--audit-log undoes a config file's no-audit-log)."
    ),
    drain_deadline: float = typer.Option(30.0, "--drain-deadline", min=0.0, help="Seconds to drain on SIGTERM."),
    max_request_bytes: int = typer.Option(
        16 << 20, "--max-request-bytes", min=MAX_EVENT_BYTES, help="The largest ingest request accepted."
    ),
    otel: bool = typer.Option(
        False,
        "--otel/--no-otel",
        help="OpenTelemetry spans per ingest and attempt, traceparent on webhooks (the otel extra).",
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
    archive_days: float = typer.Option(
        0.0, "--archive-days", min=0, max=3650, help="Keep events and every attempt N days for replays (0: off)."
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

    try:
        no_audit_log = audit_log_off(ctx, no_audit_log)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
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
        archive_days=archive_days,
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


def register(router_app: typer.Typer) -> None:
    """Add ``migrate`` and ``serve`` to the ``router`` group."""
    router_app.command("migrate")(migrate_command)
    router_app.command("serve")(serve)
