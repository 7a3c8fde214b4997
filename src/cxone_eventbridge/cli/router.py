"""`cxeb router`: run the router (`serve`) and talk to a running one (`send`, `status`, `dlq`, `enable`).

The talking commands use the router's HTTP API with the bearer ingest key; their defaults come from
``CXEB_ROUTER_URL`` and ``CXEB_INGEST_KEY`` (``config.RouterSettings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

import httpx
import typer
from pydantic import SecretStr

from cxone_eventbridge import wire
from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.confirm import confirm_deletion
from cxone_eventbridge.cli.runner import run
from cxone_eventbridge.config import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_ROUTER_PORT,
    RouterSettings,
    read_settings,
)
from cxone_eventbridge.exceptions import APIConnectionError, APIStatusError, ConfigurationError, status_error_class
from cxone_eventbridge.retry import parse_retry_after
from cxone_eventbridge.wire import MAX_EVENT_BYTES

if TYPE_CHECKING:
    from cxone_eventbridge.observe.tracing import RouterTracing

router_app = typer.Typer(help="Run the event router and talk to a running one.", no_args_is_help=True)
dlq_app = typer.Typer(help="List, replay or purge dead letters.", no_args_is_help=True)
router_app.add_typer(dlq_app, name="dlq")

URL = typer.Option(None, "--url", help="The router's base URL [env: CXEB_ROUTER_URL; default http://127.0.0.1:8790].")
INGEST_KEY = typer.Option(None, "--ingest-key", help="The bearer ingest key [env: CXEB_INGEST_KEY].")
CA_BUNDLE = typer.Option(None, "--ca-bundle", help="CA certificates to trust for an https router URL.")
OUTPUT = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json.")
SEND_ATTEMPTS = 5
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _router_settings() -> RouterSettings:
    try:
        return read_settings(RouterSettings)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)


@dataclass
class RouterAPI:
    """A small client of the router's HTTP API; errors become ``APIError``s with the router's message."""

    url: str
    ingest_key: SecretStr | None
    ca_bundle: Path | None = None
    timeout_s: float = 30.0
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    async def __aenter__(self) -> RouterAPI:
        headers = {"User-Agent": "cxeb-router-cli"}
        if self.ingest_key is not None:
            headers["Authorization"] = f"Bearer {self.ingest_key.get_secret_value()}"
        verify: str | bool = str(self.ca_bundle) if self.ca_bundle is not None else True
        self._client = httpx.AsyncClient(
            base_url=self.url.rstrip("/"), headers=headers, timeout=self.timeout_s, verify=verify, trust_env=False
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def request(self, method: str, path: str, *, check: bool = True, **kwargs: Any) -> httpx.Response:
        """One request; connection failures (and error statuses, when ``check``) raise ``APIError``s."""
        assert self._client is not None
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"cannot reach the router at {self.url}: {exc or type(exc).__name__}") from exc
        if check and response.status_code >= 400:
            raise self.error(response)
        return response

    @staticmethod
    def error(response: httpx.Response) -> APIStatusError:
        """The router's JSON error body as an ``APIStatusError`` (message and field errors kept)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        message = f"the router answered {response.status_code}"
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = f"{message}: {body['message']}"
            items = [e for e in body.get("errors", []) if isinstance(e, dict)]
            if items:
                message += "".join(f"\n  - {e.get('field', '')}: {e.get('message', '')}" for e in items)
        cls = status_error_class(response.status_code)
        return cls(message, status_code=response.status_code, body=body)


def _api(url: str | None, ingest_key: str | None, ca_bundle: Path | None) -> RouterAPI:
    settings = _router_settings()
    key = SecretStr(ingest_key) if ingest_key else settings.ingest_key
    return RouterAPI(url or settings.router_url, key, ca_bundle)


# -- send ---------------------------------------------------------------------------------------------


@dataclass
class SendSummary:
    """What ``router send`` did."""

    lines: int = 0
    sent: int = 0
    accepted: int = 0
    rejected_locally: list[tuple[int, str]] = field(default_factory=list)
    rejected_by_router: list[tuple[int, str]] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "accepted": self.accepted,
            "rejectedLocally": [{"line": n, "message": m} for n, m in self.rejected_locally],
            "rejectedByRouter": [{"line": n, "message": m} for n, m in self.rejected_by_router],
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
        }


def check_line(text: str, *, max_event_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """One JSON line as an event; ValueError says what is wrong with it (as the router would)."""
    try:
        # The router's own rules: NaN, 1e999, lone surrogates and nesting past 64 levels are not JSON here.
        event = wire.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    size = len(wire.encode_event(event))
    if size > max_event_bytes:
        raise ValueError(f"the event is {size} bytes; the limit is {max_event_bytes}")
    event_id = event.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 256):
        raise ValueError("id must be a non-empty string of at most 256 characters")
    return event


def _read_events(stream: TextIO, summary: SendSummary) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(stream, start=1):
        text = raw.strip()
        if not text:
            continue
        summary.lines += 1
        try:
            event = check_line(text)
        except ValueError as exc:
            summary.rejected_locally.append((number, str(exc)))
            render.warn(f"line {number}: {exc}; skipped")
            continue
        # An id of our own makes a retried POST idempotent: the router drops the duplicate.
        event.setdefault("id", str(uuid.uuid4()))
        yield number, event


def _batches(
    events: Iterator[tuple[int, dict[str, Any]]], *, size: int, max_bytes: int
) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    total = 0
    for number, event in events:
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        if batch and (len(batch) >= size or total + len(line) + 1 > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append((number, line))
        total += len(line) + 1
    if batch:
        yield batch


async def _post_batch(
    api: RouterAPI, batch: list[tuple[int, bytes]], priority: int, summary: SendSummary
) -> httpx.Response:
    """POST one NDJSON batch, retrying connection errors, 429 and 502-504 with backoff (Retry-After honoured)."""
    body = b"\n".join(line for _, line in batch) + b"\n"
    delay = 0.5
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            response = await api.request(
                "POST",
                "/v1/events",
                check=False,
                params={"priority": priority},
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )
        except APIConnectionError:
            if attempt == SEND_ATTEMPTS:
                raise
        else:
            if response.status_code not in RETRY_STATUSES or attempt == SEND_ATTEMPTS:
                return response
            advised = parse_retry_after(response.headers.get("Retry-After"), now=datetime.now(UTC))
            if advised is not None:
                delay = advised
        summary.retries += 1
        await asyncio.sleep(min(delay, 30.0))
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _bad_items(body: Any, batch: list[tuple[int, bytes]]) -> dict[int, str]:
    """The router's ``errors`` (``line N`` of the batch) as file line numbers."""
    bad: dict[int, str] = {}
    if not isinstance(body, dict):
        return bad
    for error in body.get("errors", []):
        where = str(error.get("field", "")) if isinstance(error, dict) else ""
        if where.startswith("line "):
            index_text = where.removeprefix("line ").split(".", 1)[0]
            if index_text.isdigit() and 1 <= int(index_text) <= len(batch):
                bad[batch[int(index_text) - 1][0]] = str(error.get("message", ""))
    return bad


async def send_events(
    api: RouterAPI,
    stream: TextIO,
    *,
    priority: int,
    batch_size: int = 500,
    max_batch_bytes: int = 4 << 20,
    progress: Any = None,
) -> SendSummary:
    """Check every line locally, POST the good ones in NDJSON batches (retried), and summarise."""
    summary = SendSummary()
    started = time.perf_counter()
    events = _read_events(stream, summary)
    for sent in _batches(events, size=batch_size, max_bytes=max_batch_bytes):
        batch = sent
        summary.sent += len(batch)
        response = await _post_batch(api, batch, priority, summary)
        if response.status_code in (400, 413, 422):
            # The router refuses a request whole: report the items it named, send the rest again.
            bad = _bad_items(response.json(), batch)
            if bad:
                summary.rejected_by_router.extend(sorted(bad.items()))
                for number, message in sorted(bad.items()):
                    render.warn(f"line {number}: rejected by the router: {message}")
                rest = [(n, line) for n, line in batch if n not in bad]
                response = await _post_batch(api, rest, priority, summary) if rest else httpx.Response(202, json={})
                batch = rest
        if response.status_code == 202:
            summary.accepted += len(response.json().get("ids", []))
        elif response.status_code == 401:
            raise status_error_class(401)("the router refused the ingest key (401)", status_code=401)
        else:
            message = RouterAPI.error(response).message
            summary.rejected_by_router.extend((n, message) for n, _ in batch)
            render.warn(f"lines {batch[0][0]}-{batch[-1][0]}: {message}")
        if progress is not None:
            progress(summary)
    summary.seconds = time.perf_counter() - started
    return summary


@router_app.command("send")
def send(  # noqa: PLR0917 -- typer maps each option to a parameter
    file: str = typer.Argument(..., help="A JSON-lines file of events, or - for stdin."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    priority: int = typer.Option(5, "--priority", min=0, max=9, help="0 (first) to 9 (last); default 5."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, max=10_000, help="Events per POST."),
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Send events (one JSON object per line) to a running router.

    Lines are checked locally first; bad ones are reported by number and skipped. POSTs are retried on
    connection errors, 429 and 5xx (an id is added to events without one, so a retry never duplicates).
    Exit 1 if any line was rejected.
    """
    try:
        stream: TextIO = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115 -- closed below
    except OSError as exc:
        render.fail(f"cannot read {file}: {exc.strerror or exc}", render.EXIT_INVALID_INPUT)
    total = None if file == "-" else _count_lines(Path(file))
    api = _api(url, ingest_key, ca_bundle)

    async def main() -> SendSummary:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=render.stderr, transient=True) as bar:
            task = bar.add_task("send", total=total)

            def advance(summary: SendSummary) -> None:
                bar.update(task, completed=summary.lines)

            async with api:
                return await send_events(api, stream, priority=priority, batch_size=batch_size, progress=advance)

    try:
        summary = run(main())
    finally:
        if stream is not sys.stdin:
            stream.close()
    if output is render.OutputFormat.JSON:
        render.print_json(summary.to_dict())
    rejected = len(summary.rejected_locally) + len(summary.rejected_by_router)
    rate = summary.accepted / summary.seconds if summary.seconds > 0 else 0.0
    render.info(
        f"{summary.accepted} accepted, {rejected} rejected ({len(summary.rejected_locally)} locally, "
        f"{len(summary.rejected_by_router)} by the router) of {summary.lines} line(s) in {summary.seconds:.2f}s "
        f"({rate:.0f} events/s, {summary.retries} retried POST(s))"
    )
    if rejected:
        raise typer.Exit(render.EXIT_ERROR)


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


# -- status, dead letters, enable -----------------------------------------------------------------------


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


@router_app.command("status")
def status(
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Per target: delivered, failed, retries, p50/p99 latency and circuit; and the queue's depths."""
    api = _api(url, ingest_key, ca_bundle)

    async def main() -> dict[str, Any]:
        async with api:
            data: dict[str, Any] = (await api.request("GET", "/v1/status")).json()
            return data

    data = run(main())
    if output is render.OutputFormat.JSON:
        render.print_json(data)
        return
    rows = [
        [
            t["target"],
            t["delivered"],
            t["failed"],
            t["retries"],
            _ms(t.get("p50Ms")),
            _ms(t.get("p99Ms")),
            t["circuit"],
            data["queue"].get("pendingByTarget", {}).get(t["target"], 0),
        ]
        for t in data.get("targets", [])
    ]
    render.print_table(
        "Targets", ["target", "delivered", "failed", "retries", "p50 ms", "p99 ms", "circuit", "pending"], rows
    )
    queue = data.get("queue", {})
    render.print_table(
        "Queue",
        ["pending", "leased", "delivered", "dead"],
        [[queue.get("pending"), queue.get("leased"), queue.get("delivered"), queue.get("dead")]],
    )


@dlq_app.command("list")
def dlq_list(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = typer.Option(None, "--target", help="Only this target's dead letters."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """The most recent dead letters, newest first."""
    api = _api(url, ingest_key, ca_bundle)
    params: dict[str, str | int] = {"limit": limit}
    if target:
        params["target"] = target

    async def main() -> list[dict[str, Any]]:
        async with api:
            items: list[dict[str, Any]] = (await api.request("GET", "/v1/dead-letters", params=params)).json()["items"]
            return items

    items = run(main())
    if output is render.OutputFormat.JSON:
        render.print_json(items)
        return
    render.print_table(
        "Dead letters",
        ["delivery id", "event id", "target", "attempts", "reason", "last status", "last error"],
        [
            [i["deliveryId"], i["eventId"], i["target"], i["attempts"], i["reason"], i["lastStatus"], i["lastError"]]
            for i in items
        ],
    )


def _act_on_dead_letters(
    action: str,
    done: str,
    *,
    target: str | None,
    ids: list[str] | None,
    api: RouterAPI,
    output: render.OutputFormat,
) -> None:
    """POST ``/v1/dead-letters/{action}`` for all, a target's, or the named dead letters; show the count.

    ``done`` is the past tense, which is also the key of the count in the answer (``replayed``, ``purged``).
    """
    body: dict[str, Any] = {}
    if target:
        body["target"] = target
    if ids:
        body["deliveryIds"] = ids

    async def main() -> dict[str, Any]:
        async with api:
            result: dict[str, Any] = (await api.request("POST", f"/v1/dead-letters/{action}", json=body)).json()
            return result

    result = run(main())
    if output is render.OutputFormat.JSON:
        render.print_json(result)
    else:
        render.success(f"{result[done]} dead letter(s) {done}")


@dlq_app.command("replay")
def dlq_replay(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = typer.Option(None, "--target", help="Only this target's dead letters."),
    ids: list[str] | None = typer.Option(None, "--id", help="A delivery id (repeatable)."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Make dead letters pending again (all, a target's, or the named ones)."""
    _act_on_dead_letters(
        "replay", "replayed", target=target, ids=ids, api=_api(url, ingest_key, ca_bundle), output=output
    )


@dlq_app.command("purge")
def dlq_purge(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str | None = typer.Option(None, "--target", help="Only this target's dead letters."),
    ids: list[str] | None = typer.Option(None, "--id", help="A delivery id (repeatable)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Delete dead letters for good (all, a target's, or the named ones)."""
    what = f"the dead letters of {target}" if target else "the named dead letters" if ids else "ALL dead letters"
    confirm_deletion(f"Delete {what}?", yes=yes, refusal=f"not purging {what}")
    _act_on_dead_letters("purge", "purged", target=target, ids=ids, api=_api(url, ingest_key, ca_bundle), output=output)


@router_app.command("enable")
def enable(
    target: str = typer.Argument(..., help="The target's name."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
) -> None:
    """Re-enable a target that the router disabled after its endpoint answered 410 Gone."""
    api = _api(url, ingest_key, ca_bundle)

    async def main() -> None:
        async with api:
            await api.request("POST", f"/v1/targets/{quote(target, safe='')}/enable")

    run(main())
    render.success(f"target {target} enabled")


# -- serve --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeOptions:
    """``router serve``'s options, gathered so the composition below reads as one function."""

    host: str
    port: int
    queue_url: str
    migrate: bool
    targets: Path | None
    from_api: bool
    sync_interval_s: float
    tls_cert: Path | None
    tls_key: Path | None
    ingest_key: SecretStr | None
    ca_bundle: Path | None
    allow_private: tuple[str, ...]
    audit_log: Path | None
    drain_deadline_s: float
    max_request_bytes: int
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    workers: int = 1
    worker: int | None = None  # this process's index among --workers
    otel: bool = False

    @property
    def owner(self) -> str:
        """This router's name in the queue's leases: stable across restarts, distinct per port and worker."""
        import socket

        suffix = f"/w{self.worker}" if self.worker is not None else ""
        return f"{socket.gethostname()}:{self.port}{suffix}"

    @property
    def audit_path(self) -> Path | None:
        """One hash-chained audit log per process: workers write ``NAME-wN.EXT`` beside ``--audit-log``."""
        if self.audit_log is None or self.worker is None:
            return self.audit_log
        return self.audit_log.with_name(f"{self.audit_log.stem}-w{self.worker}{self.audit_log.suffix}")


def _server_ssl(options: ServeOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None and options.tls_key is None:
        return None
    if options.tls_cert is None or options.tls_key is None:
        raise ConfigurationError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"--tls-cert/--tls-key cannot be loaded: {exc}") from exc
    return context


def _delivery_ssl(ca_bundle: Path | None) -> ssl.SSLContext | None:
    if ca_bundle is None:
        return None
    from cxone_eventbridge.router.delivery import ssl_context_for

    try:
        return ssl_context_for(str(ca_bundle))  # the system's CAs and these
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"--ca-bundle {ca_bundle} cannot be loaded: {exc}") from exc


async def serve_router(options: ServeOptions) -> None:
    """Compose the router (queue, targets, observers, HTTP API), serve until a signal, then drain."""
    from cxone_eventbridge.observe.audit import AuditLog
    from cxone_eventbridge.observe.delivery_log import log_delivery_outcomes
    from cxone_eventbridge.observe.events import ObserverBus
    from cxone_eventbridge.observe.metrics import RouterMetrics
    from cxone_eventbridge.observe.operations_log import OperationsLog
    from cxone_eventbridge.observe.status import StatusTracker
    from cxone_eventbridge.router.composition import RouterConfig, build_router
    from cxone_eventbridge.router.http_api import RouterAPI, ServiceConfig
    from cxone_eventbridge.ssrf import EgressPolicy

    try:
        egress = EgressPolicy.from_cidrs(options.allow_private)
    except ValueError as exc:
        raise ConfigurationError(f"--allow-private: {exc}") from exc
    config = ServiceConfig(
        host=options.host,
        port=options.port,
        ingest_key=options.ingest_key,
        ssl_context=_server_ssl(options),
        max_request_bytes=options.max_request_bytes,
        max_connections=options.max_connections,
        idle_timeout_s=options.idle_timeout_s,
        body_timeout_s=options.body_timeout_s,
        drain_deadline_s=options.drain_deadline_s,
        reuse_port=options.worker is not None,
    )
    config.check()
    targets = []
    if options.targets is not None:
        from cxone_eventbridge.cli.context import all_targets, load_targets
        from cxone_eventbridge.iac.targets_file import SecretResolution

        targets = all_targets(load_targets([options.targets], resolution=SecretResolution.REQUIRED))
    bus = ObserverBus()
    metrics, status = RouterMetrics(), StatusTracker()
    bus.subscribe(metrics.observe)
    bus.subscribe(status.observe)
    bus.subscribe(OperationsLog(status).observe)  # after status: an open circuit's line quotes its reason
    bus.subscribe(log_delivery_outcomes)  # retries at -v, dead letters always, each with its ids
    audit = AuditLog(options.audit_path) if options.audit_path is not None else None
    if audit is not None:
        bus.subscribe(audit.observe)
    router_config = RouterConfig(
        queue_url=options.queue_url,
        owner=options.owner,
        migrate=options.migrate,
        egress=egress,
        ssl_context=_delivery_ssl(options.ca_bundle),
    )
    if router_config.backend == "sqlite":
        Path(options.queue_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    tracing = _tracing() if options.otel else None
    if tracing is not None:
        bus.subscribe(tracing.observe)
    router = build_router(
        router_config, targets=targets, bus=bus, header_hook=tracing.webhook_headers if tracing is not None else None
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(lambda: audit.close() if audit is not None else None)
        sync_task: asyncio.Task[None] | None = None
        if options.from_api:
            from cxone_eventbridge.api import CXoneClient
            from cxone_eventbridge.cli.context import require_api_settings
            from cxone_eventbridge.router.targets_sync import TargetsSync

            client = await stack.enter_async_context(CXoneClient.from_settings(require_api_settings()))
            sync = TargetsSync(client.routes, router, interval_s=options.sync_interval_s)
            first = await sync.sync_once()
            render.info(f"routing table loaded from the API: {len(first.added)} target(s)")
        await router.start()
        if options.from_api:
            sync_task = asyncio.create_task(sync.run(), name="cxeb-routes-sync")
        service = RouterAPI(router, config, bus=bus, metrics=metrics, status=status, audit=audit)
        if tracing is not None:
            tracing.instrument(service.app)
            stack.callback(tracing.close)

        async def drain(deadline_s: float) -> None:
            if sync_task is not None:
                sync_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sync_task
            await router.stop(deadline_s)

        def started(url: str) -> None:
            render.info(f"router listening on {url} ({len(router.target_names())} target(s))")

        await service.serve_until_signalled(on_stop=drain, on_started=started)
        render.info("router stopped")


QUEUE_URL = typer.Option(
    None,
    "--queue",
    envvar="CXEB_QUEUE_URL",
    help="The queue: sqlite:///PATH (one router) or postgresql://USER@HOST/DB[?schema=NAME] (several).",
    show_envvar=True,
)


def sqlite_url(path: Path) -> str:
    from cxone_eventbridge.router.composition import sqlite_url as url_of

    return url_of(path)


@router_app.command("migrate")
def migrate_command(
    queue: str | None = QUEUE_URL,
    db: Path = typer.Option(Path("cxeb-router.db"), "--db", help="The SQLite queue file (when --queue is not given)."),
) -> None:
    """Create or upgrade the queue's schema to this version's (PostgreSQL routers refuse to start until then)."""
    from cxone_eventbridge.router.composition import RouterConfig, migrate_queue

    config = RouterConfig(queue_url=queue or sqlite_url(db))
    version = run(migrate_queue(config))
    render.info(f"the {config.backend} queue's schema is at version {version}")


@router_app.command("serve")
def serve(  # noqa: PLR0917 -- typer maps each option to a parameter
    host: str = typer.Option("127.0.0.1", "--host", help="Listen address; beyond loopback an ingest key is required."),
    port: int = typer.Option(DEFAULT_ROUTER_PORT, "--port", min=0, max=65535),
    db: Path = typer.Option(Path("cxeb-router.db"), "--db", help="The SQLite queue file (when --queue is not given)."),
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
        None, "--allow-private", help="A CIDR targets may resolve to despite the SSRF guard (repeatable)."
    ),
    audit_log: Path = typer.Option(Path("target_audit.log"), "--audit-log", help="The hash-chained audit log."),
    no_audit_log: bool = typer.Option(False, "--no-audit-log", help="Do not write an audit log."),
    drain_deadline: float = typer.Option(30.0, "--drain-deadline", min=0.0, help="Seconds to drain on SIGTERM."),
    max_request_bytes: int = typer.Option(16 << 20, "--max-request-bytes", min=MAX_EVENT_BYTES),
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
    if (targets is None) == (not from_api):
        render.fail("give exactly one of --targets FILE or --from-api", render.EXIT_INVALID_INPUT)
    key = SecretStr(ingest_key) if ingest_key else _router_settings().ingest_key
    options = ServeOptions(
        host=host,
        port=port,
        queue_url=queue or sqlite_url(db),
        migrate=migrate,
        targets=targets,
        from_api=from_api,
        sync_interval_s=sync_interval,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ingest_key=key,
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
    from cxone_eventbridge.router.composition import RouterConfig

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


def _tracing() -> RouterTracing:
    """The router's tracing on the global tracer provider (``opentelemetry-instrument`` configures it)."""
    try:
        from cxone_eventbridge.observe.tracing import RouterTracing
    except ImportError as exc:
        raise ConfigurationError("--otel needs OpenTelemetry: pip install 'cxone-eventbridge[otel]'") from exc
    return RouterTracing()


def serve_workers(options: ServeOptions) -> int:
    """Run ``options.workers`` router processes on one port (the kernel spreads connections over them,
    SO_REUSEPORT); SIGTERM or SIGINT here drains them all. The exit code is the worst of theirs."""
    import multiprocessing
    import os
    import signal
    from dataclasses import replace

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_worker, args=(replace(options, worker=index),), name=f"cxeb-router-w{index}")
        for index in range(options.workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    return max((process.exitcode or 0) if (process.exitcode or 0) >= 0 else 1 for process in processes)


def _serve_worker(options: ServeOptions) -> None:
    import os

    os.setsid()  # a terminal's Ctrl-C goes to the parent only, which drains every worker once
    run(serve_router(options), fast_loop=True)


def register(app: typer.Typer) -> None:
    """Add the ``router`` group to the root app."""
    from cxone_eventbridge.cli import router_tail

    router_tail.register(router_app)
    app.add_typer(router_app, name="router")
