"""Shared loopback fixtures: a real HTTPS webhook receiver and a real sandbox control-plane server.

``https_receiver`` is an async factory: ``await https_receiver(status=200, fail_rate=0.0, secret=None,
latency_ms=0, retry_after=None)`` starts a receiver on an ephemeral 127.0.0.1 port in the test's event
loop and returns it (``.url``, ``.ca_path``, ``.records()``); every receiver is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.sandbox.certs import ensure_certificates
from cxone_eventbridge.sandbox.receiver import ReceiverConfig, RunningReceiver, start_receiver

ReceiverFactory = Callable[..., Awaitable[RunningReceiver]]


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
