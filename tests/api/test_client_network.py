"""The client's network settings on real loopback sockets: CXONE_CA_BUNDLE for TLS, HTTP(S)_PROXY honoured."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.config import Settings
from cxone_eventbridge.exceptions import (
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    InternalServerError,
)


def _settings(base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "client_id": "client-id",
        "client_secret": SecretStr("client-secret"),
        "max_attempts": 1,
    }
    values.update(overrides)
    return Settings(**values)


async def test_ca_bundle_is_trusted(https_receiver: Callable[..., Awaitable[Any]]) -> None:
    """With CXONE_CA_BUNDLE naming the local CA the TLS handshake succeeds; without it, it is refused.

    The receiver is not a token endpoint, so the successful handshake ends in an AuthenticationError about
    the answer, which is what shows the request got through TLS.
    """
    receiver = await https_receiver()
    async with CXoneClient.from_settings(_settings(receiver.url, ca_bundle=receiver.ca_path)) as client:
        with pytest.raises(AuthenticationError, match="without an access_token"):
            await client.targets.list_all()
    assert len(receiver.records()) == 1  # the token request, over TLS
    async with CXoneClient.from_settings(_settings(receiver.url)) as client:
        with pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.targets.list_all()


def test_unreadable_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    """A CA bundle that cannot be loaded is named in a ConfigurationError, not a traceback from ssl."""
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="CXONE_CA_BUNDLE"):
        CXoneClient.from_settings(_settings("https://cxone.test", ca_bundle=bogus))


async def test_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, the token request goes to the proxy in absolute form (httpx trust_env)."""
    first_lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first_lines.append(await reader.readline())
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    try:
        async with CXoneClient.from_settings(_settings("http://cxone.invalid")) as client:
            with pytest.raises(InternalServerError, match="HTTP 502"):
                await client.targets.list_all()
    finally:
        server.close()
        await server.wait_closed()
    assert first_lines == [b"POST http://cxone.invalid/oauth/token HTTP/1.1\r\n"]
