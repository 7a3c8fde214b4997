"""Shared loopback fixtures: a real HTTPS webhook receiver and a real sandbox control-plane server.

``sandbox`` is a real sandbox server (uvicorn on a 127.0.0.1 ephemeral port, in a background thread,
shared by the session) with a fresh client id, hence a fresh empty tenant, per test. It has ``.base_url``,
``.token_url``, ``.client_id``, ``.client_secret``, ``.access_key_id``, ``.access_key_secret``,
``.settings(**overrides) -> Settings`` and ``.app`` (for ``httpx.ASGITransport``). It trusts the session's
receiver CA and allows private endpoints, so targets can point at ``https_receiver``.
``sandbox_factory(**config_overrides)`` starts a dedicated server with its own ``SandboxConfig`` (rate
limits, faults, a fake clock, a --db file); it is stopped at teardown.

``https_receiver`` is an async factory: ``await https_receiver(status=200, fail_rate=0.0, secret=None,
latency_ms=0, retry_after=None)`` starts a receiver on an ephemeral 127.0.0.1 port in the test's event
loop and returns it (``.url``, ``.ca_path``, ``.records()``); every receiver is stopped at teardown.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from cxone_eventbridge.config import Settings
from cxone_eventbridge.sandbox.app import create_app
from cxone_eventbridge.sandbox.certs import ensure_certificates
from cxone_eventbridge.sandbox.config import SandboxClient, SandboxConfig
from cxone_eventbridge.sandbox.receiver import ReceiverConfig, RunningReceiver, start_receiver
from cxone_eventbridge.sandbox.server import BackgroundServer
from cxone_eventbridge.sandbox.state import SandboxState

ReceiverFactory = Callable[..., Awaitable[RunningReceiver]]
# Client-side and server-side limits high enough that no test meets them unless it asks to.
TEST_RATE_LIMIT_PER_MINUTE = 1_000_000.0


@pytest.fixture(scope="session")
def receiver_certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One certificate set for the whole session (issuing one takes a few milliseconds, but why repeat)."""
    directory = tmp_path_factory.mktemp("receiver-certs")
    ensure_certificates(directory)
    return directory


@pytest.fixture
async def https_receiver(receiver_certs_dir: Path, tmp_path: Path) -> AsyncIterator[ReceiverFactory]:
    """An async factory of HTTPS receivers on 127.0.0.1 ephemeral ports, each recording to its own file."""
    started: list[RunningReceiver] = []

    async def factory(
        status: int = 200,
        fail_rate: float = 0.0,
        secret: str | None = None,
        latency_ms: float = 0,
        retry_after: float | None = None,
        **options: Any,
    ) -> RunningReceiver:
        record_path = tmp_path / f"receiver-{len(started)}.jsonl"
        config = ReceiverConfig(
            certs_dir=receiver_certs_dir,
            port=0,
            record_path=record_path,
            status=status,
            fail_rate=fail_rate,
            secret=secret,
            latency_ms=latency_ms,
            retry_after=retry_after,
            **options,
        )
        receiver = await start_receiver(config)
        started.append(receiver)
        return receiver

    yield factory
    for receiver in started:
        await receiver.stop()


@dataclass(frozen=True)
class SandboxHandle:
    """A running sandbox server and one client (tenant) on it."""

    app: FastAPI
    base_url: str
    client_id: str
    client_secret: str
    access_key_id: str
    access_key_secret: str
    config: SandboxConfig

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def state(self) -> SandboxState:
        """The server's state (store, client registry), for assertions."""
        state: SandboxState = self.app.state.sandbox
        return state

    def settings(self, **overrides: Any) -> Settings:
        """Client settings pointing at this sandbox with this handle's credentials."""
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "token_url": self.token_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "rate_limit_per_minute": TEST_RATE_LIMIT_PER_MINUTE,
            "ca_bundle": self.config.ca_bundle,
        }
        values.update(overrides)
        return Settings(**values)


def _test_config(receiver_certs_dir: Path, **overrides: Any) -> SandboxConfig:
    base = SandboxConfig(
        port=0,
        rate_limit_per_minute=TEST_RATE_LIMIT_PER_MINUTE,
        allow_private=("127.0.0.0/8",),
        ca_bundle=receiver_certs_dir / "ca.pem",
    )
    return replace(base, **overrides)


@pytest.fixture(scope="session")
def _shared_sandbox(receiver_certs_dir: Path) -> Iterator[tuple[FastAPI, BackgroundServer]]:
    app = create_app(_test_config(receiver_certs_dir))
    server = BackgroundServer(app).start()
    yield app, server
    server.stop()
    app.state.sandbox.close()


@pytest.fixture
def sandbox(_shared_sandbox: tuple[FastAPI, BackgroundServer]) -> SandboxHandle:
    """A real sandbox server on loopback, with a fresh client id (an empty tenant of its own) for this test."""
    app, server = _shared_sandbox
    state: SandboxState = app.state.sandbox
    suffix = secrets.token_hex(6)
    client = SandboxClient(
        client_id=f"test-client-{suffix}",
        client_secret=secrets.token_urlsafe(24),
        access_key_id=f"test-key-{suffix}",
        access_key_secret=secrets.token_urlsafe(24),
    )
    state.clients.register(client)
    assert client.access_key_id is not None
    assert client.access_key_secret is not None
    return SandboxHandle(
        app=app,
        base_url=server.base_url,
        client_id=client.client_id,
        client_secret=client.client_secret,
        access_key_id=client.access_key_id,
        access_key_secret=client.access_key_secret,
        config=state.config,
    )


SandboxFactory = Callable[..., SandboxHandle]


@pytest.fixture
def sandbox_factory(receiver_certs_dir: Path) -> Iterator[SandboxFactory]:
    """Start dedicated sandbox servers with ``SandboxConfig`` overrides (faults, rate limits, clock, db_path)."""
    running: list[tuple[FastAPI, BackgroundServer]] = []

    def factory(**overrides: Any) -> SandboxHandle:
        config = _test_config(receiver_certs_dir, **overrides)
        app = create_app(config)
        server = BackgroundServer(app).start()
        running.append((app, server))
        return SandboxHandle(
            app=app,
            base_url=server.base_url,
            client_id=config.client_id,
            client_secret=config.client_secret,
            access_key_id=config.access_key_id,
            access_key_secret=config.access_key_secret,
            config=config,
        )

    yield factory
    for app, server in running:
        server.stop()
        app.state.sandbox.close()


# -- PostgreSQL ---------------------------------------------------------------------------------------
# Tests that need PostgreSQL take the server from CXEB_TEST_POSTGRES_DSN (default: this machine kind's
# server, trust auth, database ``test``). Without a server they are skipped, with one line saying so,
# unless CXEB_REQUIRE_POSTGRES=1 (as .ci/run sets it): then a missing server fails the run.
POSTGRES_DSN = os.environ.get("CXEB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_RUN_ID = secrets.token_hex(3)
_schemas = itertools.count()


def _in_thread(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion on a loop of its own (never the test's), from sync fixture code."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The test PostgreSQL server's DSN; skips (or fails, with CXEB_REQUIRE_POSTGRES=1) when it does not answer."""

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=3)
        await conn.close()

    try:
        _in_thread(probe)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        where = POSTGRES_DSN.rsplit("@", 1)[-1]
        message = (
            f"PostgreSQL tests need a server at {where} ({type(exc).__name__}); start one or set"
            " CXEB_TEST_POSTGRES_DSN to run them"
        )
        if os.environ.get("CXEB_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CXEB_REQUIRE_POSTGRES=1: {message}", pytrace=False)
        pytest.skip(message)
    yield POSTGRES_DSN

    async def drop_leftovers() -> None:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=3)
        try:
            await conn.execute("SET lock_timeout = '30s'")  # an error at the end beats a run that never ends
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
                f"cxeb-router:cxeb_t{_RUN_ID}_%",
            )
            names = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"cxeb_t{_RUN_ID}_%")
            for (name,) in names:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    _in_thread(drop_leftovers)


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema name of this test's own (created by the queue's migrations), dropped afterwards."""
    name = f"cxeb_t{_RUN_ID}_{next(_schemas)}"
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(postgres_dsn, timeout=3)
        try:
            # A queue connection of this schema that its test left open (idle in a transaction, say) would
            # hold a lock that DROP SCHEMA waits for forever: end those sessions first, and bound the wait.
            await conn.execute("SET lock_timeout = '10s'")
            for _ in range(3):
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    f"cxeb-router:{name}",
                )
                try:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                    return
                except asyncpg.LockNotAvailableError:
                    continue
            # Still locked: the session's sweep of this run's schemas tries again at the end.
        finally:
            await conn.close()

    _in_thread(drop)
