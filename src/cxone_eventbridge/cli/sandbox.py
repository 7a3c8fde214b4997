"""`cxeb sandbox`: the bundled control-plane server (`serve`) and a local HTTPS webhook receiver (`receiver`)."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.runner import run
from cxone_eventbridge.defaults import DEFAULT_RECEIVER_PORT, DEFAULT_SANDBOX_PORT

if TYPE_CHECKING:
    from cxone_eventbridge.sandbox.config import SandboxConfig

sandbox_app = typer.Typer(
    help="Offline development: a local CXone-style control plane and an HTTPS webhook receiver.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DEFAULT_CERTS_DIR = Path(".cxeb/certs")


def _bind(host: str, port: int) -> socket.socket:
    """Bind and listen before starting, so a busy port is one clear message rather than a server log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening now means that a client started after the banner is printed finds the port open.
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        render.fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", render.EXIT_ERROR)
    return sock


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _print_banner(config: SandboxConfig, base_url: str, *, custom_secret: bool) -> None:
    from cxone_eventbridge.sandbox.routes.oauth import TOKEN_PATH

    # Demo credentials guard nothing real and are printed for copying; a secret the user chose is not.
    shown_secret = "<the --client-secret you gave>" if custom_secret else config.client_secret
    where = f"database {config.db_path}" if config.db_path else "in memory"
    render.info(f"cxeb sandbox listening on {base_url} ({where})")
    render.info(f"  client id:      {config.client_id}")
    render.info(f"  client secret:  {shown_secret}")
    if not custom_secret:
        render.info(f"  access key:     {config.access_key_id} / {config.access_key_secret} (password grant)")
    if config.allow_private:
        render.info(f"Test calls may reach private addresses in: {', '.join(config.allow_private)}")
    else:
        render.info(
            "Test calls to loopback or private endpoints are refused; --allow-private 127.0.0.0/8 admits loopback."
        )
    render.info("Point the client at it:")
    render.info(f"  export CXONE_BASE_URL={base_url}")
    render.info(f"  export CXONE_TOKEN_URL={base_url}{TOKEN_PATH}")
    render.info(f"  export CXONE_CLIENT_ID={config.client_id}")
    render.info(f"  export CXONE_CLIENT_SECRET={shown_secret}")


# What the deprecated --allow-private-endpoints admitted: every address, as a CIDR list.
_EVERY_ADDRESS = ("0.0.0.0/0", "::/0")


def _allowed_ranges(cidrs: list[str], *, deprecated_all: bool) -> tuple[str, ...]:
    """``--allow-private`` ranges, with the old flag's meaning (every address) and a warning when it is given."""
    from cxone_eventbridge.ssrf import EgressPolicy

    try:
        EgressPolicy.from_cidrs(cidrs)
    except ValueError as exc:
        render.fail(f"--allow-private: {exc}", render.EXIT_INVALID_INPUT)
    if not deprecated_all:
        return tuple(cidrs)
    render.warn(
        "--allow-private-endpoints is deprecated and will be removed: use --allow-private CIDR, as the router does "
        "(e.g. --allow-private 127.0.0.0/8 for a local receiver); it admits every address until then"
    )
    return (*cidrs, *_EVERY_ADDRESS)


@sandbox_app.command()
def serve(  # noqa: PLR0917 -- typer maps each option to a parameter
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_SANDBOX_PORT, "--port", help="Port to listen on (0 picks a free one)."),
    db: Path | None = typer.Option(None, "--db", help="SQLite file: state survives a restart. Default: in memory."),
    client_id: str | None = typer.Option(None, "--client-id", help="OAuth2 client id (default: the demo client)."),
    client_secret: str | None = typer.Option(
        None, "--client-secret", envvar="CXEB_SANDBOX_CLIENT_SECRET", help="OAuth2 client secret.", show_default=False
    ),
    token_ttl: int = typer.Option(3600, "--token-ttl", help="Access token lifetime in seconds."),
    rate_limit: float = typer.Option(100.0, "--rate-limit", help="Requests per minute per client."),
    rate_burst: int | None = typer.Option(
        None, "--rate-burst", help="Bucket size (default: a quarter minute's worth)."
    ),
    allow_private: list[str] | None = typer.Option(
        None,
        "--allow-private",
        metavar="CIDR",
        help="Let test calls reach this private or loopback range despite the SSRF guard (repeatable).",
    ),
    allow_private_endpoints: bool = typer.Option(
        False, "--allow-private-endpoints", hidden=True, help="Deprecated: --allow-private CIDR (admits every range)."
    ),
    ca_bundle: Path | None = typer.Option(
        None,
        "--ca-bundle",
        exists=True,
        dir_okay=False,
        help="Extra CAs trusted by test calls (the receiver's ca.pem).",
    ),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="Fraction of API requests answered with a random 5xx."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Added to every API request."),
    burst_429: int = typer.Option(0, "--burst-429", help="Forced 429s: the first N requests of every period."),
    burst_period: int = typer.Option(0, "--burst-period", help="Period of --burst-429 in requests (0: once)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible fault injection."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    lose_answer_every: int = typer.Option(
        0, "--lose-answer-every", help="Commit every Nth write but answer 504 instead (0: never)."
    ),
    token_rate_limit: float | None = typer.Option(
        None, "--token-rate-limit", help="Token requests per minute before 429 (default: unlimited)."
    ),
) -> None:
    """Run the sandbox control-plane server (OAuth2 + targets API) until interrupted."""
    import uvicorn

    from cxone_eventbridge.sandbox.app import create_app
    from cxone_eventbridge.sandbox.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SandboxConfig
    from cxone_eventbridge.sandbox.server import uvicorn_config

    try:
        config = SandboxConfig(
            host=host,
            port=port,
            db_path=db,
            client_id=client_id or DEMO_CLIENT_ID,
            client_secret=client_secret or DEMO_CLIENT_SECRET,
            token_ttl_s=token_ttl,
            rate_limit_per_minute=rate_limit,
            rate_limit_burst=rate_burst,
            allow_private=_allowed_ranges(allow_private or [], deprecated_all=allow_private_endpoints),
            ca_bundle=ca_bundle,
            fault_rate=fault_rate,
            latency_ms=latency_ms,
            fault_429_burst=burst_429,
            fault_429_period=burst_period,
            fault_lost_answer_every=lose_answer_every,
            token_rate_limit_per_minute=token_rate_limit,
            seed=seed,
        )
    except ValueError as exc:
        render.fail(f"invalid option: {exc}", render.EXIT_INVALID_INPUT)
    app = create_app(config)
    sock = _bind(host, port)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; both end as a clean stop.
    signal.signal(signal.SIGTERM, _interrupt)
    server = uvicorn.Server(uvicorn_config(app, host=host, port=port, access_log=access_log))
    try:
        _print_banner(
            config, f"http://{_url_host(host)}:{sock.getsockname()[1]}", custom_secret=client_secret is not None
        )
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        render.info("sandbox stopped")
    finally:
        app.state.sandbox.close()


@sandbox_app.command()
def receiver(  # noqa: PLR0917 -- typer maps each option to a parameter
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_RECEIVER_PORT, "--port", help="Port to listen on (0 picks a free one)."),
    certs: Path = typer.Option(
        DEFAULT_CERTS_DIR, "--certs", file_okay=False, help="Where ca.pem, cert.pem, key.pem live."
    ),
    record: Path | None = typer.Option(None, "--record", dir_okay=False, help="Append each request as a JSON line."),
    secret: str | None = typer.Option(
        None,
        "--secret",
        envvar="CXEB_RECEIVER_SECRET",
        help="whsec_... secret to verify signatures with.",
        show_default=False,
    ),
    status: int = typer.Option(200, "--status", help="Status code for every POST."),
    fail_rate: float = typer.Option(0.0, "--fail-rate", help="Fraction of POSTs answered 503."),
    retry_after: float | None = typer.Option(None, "--retry-after", help="Retry-After seconds on non-2xx answers."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Delay before each answer."),
    reject_invalid_signatures: bool = typer.Option(
        False, "--reject-invalid-signatures", help="Answer 401 when a signature does not verify (needs --secret)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible --fail-rate."),
    oauth_client_id: str | None = typer.Option(
        None, "--oauth-client-id", help="Serve POST /oauth/token for this client and require its bearer tokens."
    ),
    oauth_client_secret: str | None = typer.Option(
        None,
        "--oauth-client-secret",
        envvar="CXEB_RECEIVER_OAUTH_CLIENT_SECRET",
        help="The OAuth client's secret (with --oauth-client-id).",
        show_default=False,
    ),
    oauth_token_ttl: float = typer.Option(3600.0, "--oauth-token-ttl", help="Issued tokens' lifetime in seconds."),
) -> None:
    """Run a local HTTPS webhook receiver that records what arrives, until interrupted."""
    from cxone_eventbridge.sandbox.receiver import ReceiverConfig, start_receiver

    try:
        config = ReceiverConfig(
            certs_dir=certs,
            host=host,
            port=port,
            record_path=record,
            secret=secret,
            status=status,
            fail_rate=fail_rate,
            retry_after=retry_after,
            latency_ms=latency_ms,
            reject_invalid_signatures=reject_invalid_signatures,
            seed=seed,
            oauth_client_id=oauth_client_id,
            oauth_client_secret=oauth_client_secret,
            oauth_token_ttl_s=oauth_token_ttl,
        )
    except ValueError as exc:
        render.fail(f"invalid option: {exc}", render.EXIT_INVALID_INPUT)

    ca_shown = certs.resolve() / "ca.pem"
    record_shown = str(record.resolve()) if record else "(not recording; add --record FILE)"

    async def main() -> None:
        import asyncio  # not at the top: help and completion import this module

        try:
            running = await start_receiver(config)
        except OSError as exc:
            render.fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", render.EXIT_ERROR)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        render.info(f"cxeb receiver listening on {running.url}")
        render.info(f"  CA certificate: {ca_shown}")
        render.info(f"  record:         {record_shown}")
        render.info(f"  signatures:     {'verified' if secret else 'not verified (add --secret)'}")
        if oauth_client_id is not None:
            render.info(f"  OAuth tokens:   {running.token_url} (client {oauth_client_id}); deliveries need one")
        render.info("Trust it from the client, router and sandbox:")
        render.info(f"  export CXONE_CA_BUNDLE={ca_shown}")
        try:
            await stop.wait()
        finally:
            await running.stop()
            render.info(f"receiver stopped after {running.request_count} request(s)")

    run(main(), fast_loop=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(sandbox_app, name="sandbox")
