"""Serving an ASGI app with uvicorn: in the foreground (the CLI) or in a background thread (tests, demos)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT_S = 10.0


def uvicorn_config(app: ASGIApp, *, host: str, port: int, access_log: bool = False) -> uvicorn.Config:
    """The uvicorn settings the sandbox uses: no websockets, no lifespan, quiet unless asked."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        ws="none",
        access_log=access_log,
        log_level="warning",
        log_config=None,  # keep the application's logging configuration
        server_header=False,
    )


class BackgroundServer:
    """uvicorn running ``app`` in a daemon thread; ``port`` 0 picks a free port (see ``.port``)."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._server = uvicorn.Server(uvicorn_config(app, host=host, port=port))
        self._thread = threading.Thread(target=self._server.run, name="cxeb-sandbox", daemon=True)
        self.port = port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start and wait until the socket is listening."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.host}:{self.port} failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.host}:{self.port} did not start within {_START_TIMEOUT_S} s")
            time.sleep(0.005)
        for server in self._server.servers:
            for sock in server.sockets:
                self.port = int(sock.getsockname()[1])
                return self
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=_START_TIMEOUT_S)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
