"""A listening site for the router's HTTP API that holds at most ``max_connections`` connections open.

Without a cap, idle connections that never send a request each hold a file descriptor: 21,000 of them
left the router unable to accept anything, or to open its queue or delivery sockets, with nothing
logged. Beyond the cap, a new connection gets ``503`` with ``Connection: close`` at once and is closed,
so that the descriptors stay available for the connections already open and for the router's own work.
Reaching the cap is logged once (a warning), and so is accepting again (with how many were refused).

Idle and slow connections are closed by aiohttp's keep-alive timeout, which the HTTP API sets: it runs
from the moment a connection opens, so a client that never completes its request headers is closed
too. Over TLS a connection counts once its handshake is done; the handshake has its own timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)

_REFUSAL_BODY = json.dumps(
    {
        "error": "too_many_connections",
        "message": "the router holds as many connections as it allows; retry shortly",
        "errors": [],
    }
).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


class ConnectionCap:
    """How many connections are open against the cap; logs each change between accepting and refusing."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.open = 0
        self.refused_total = 0
        self._refused_while_capped = 0

    def admit(self) -> bool:
        """Count a new connection in, or say it must be refused (logging when the cap is first hit)."""
        if self.open >= self.max_connections:
            if self._refused_while_capped == 0:
                log.warning(
                    "connection cap reached: %d connections open; new connections are refused with 503 "
                    "until some close",
                    self.open,
                )
            self._refused_while_capped += 1
            self.refused_total += 1
            return False
        if self._refused_while_capped:
            log.info(
                "accepting connections again: %d refused while at the cap of %d",
                self._refused_while_capped,
                self.max_connections,
            )
            self._refused_while_capped = 0
        self.open += 1
        return True

    def release(self) -> None:
        """A counted connection closed."""
        self.open -= 1


class _CountedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, admitted against the cap when the connection is made."""

    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap) -> None:
        self._inner = inner
        self._cap = cap
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Decided here rather than in the factory: connection_made calls run one after another, so the
        # count is exact even when a burst of connections is accepted at once.
        if not self._cap.admit():
            # A stream transport (uvloop's does not subclass asyncio.WriteTransport, hence the cast).
            writable = cast(asyncio.WriteTransport, transport)
            writable.write(REFUSAL)
            writable.close()
            return
        self._admitted = True
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self._cap.release()
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()


class CappedTCPSite(web.BaseSite):
    """``aiohttp.web.TCPSite`` with a connection cap (see the module's docstring)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        cap: ConnectionCap,
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        backlog: int = 1024,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._reuse_port = reuse_port  # several router processes on one port (cxeb router serve --workers)
        self._host = host
        self._port = port
        self._cap = cap
        self._ssl_handshake_timeout = ssl_handshake_timeout if ssl_context is not None else None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up before its sites start
        cap = self._cap

        def protocol() -> asyncio.Protocol:
            return _CountedProtocol(server(), cap)

        extra: dict[str, Any] = {}
        if self._ssl_handshake_timeout is not None:
            extra["ssl_handshake_timeout"] = self._ssl_handshake_timeout
        if self._reuse_port:
            extra["reuse_port"] = True
        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog, **extra
        )
