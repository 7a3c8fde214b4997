"""HTTP-level guards that wrap the whole sandbox app (pure ASGI): body size limit and fault injection."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxone_eventbridge.models import ErrorBody
from cxone_eventbridge.sandbox.faults import FAULT_HEADER, LOST_ANSWER_STATUS, FaultInjector

API_PREFIX = "/api/"


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, message=message).to_wire(), status_code=status, headers=headers)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, before any handler reads them.

    The body is read here, up to the limit, and replayed to the app: handlers never see a partial body.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error(413, "payload_too_large", f"the request body exceeds {self.max_bytes} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _error(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await too_large(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class FaultMiddleware:
    """Injected latency, forced 429 bursts and random 5xx on the API routes (never on the token endpoint)."""

    def __init__(self, app: ASGIApp, *, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: Any = scope.get("path", "")
        if scope["type"] != "http" or not str(path).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        await self.faults.delay()
        fault = self.faults.next_fault()
        if fault is None and self.faults.lose_answer(str(scope.get("method", ""))):
            await self._lose_answer(scope, receive, send)
            return
        if fault is None:
            await self.app(scope, receive, send)
            return
        headers = {FAULT_HEADER: "injected"}
        if fault.status == 429:
            headers["Retry-After"] = str(fault.retry_after_s)
            response = _error(429, "rate_limited", "injected fault: too many requests", headers)
        else:
            response = _error(fault.status, "injected_fault", f"injected fault: HTTP {fault.status}", headers)
        await response(scope, receive, send)

    async def _lose_answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request to the end (its write is committed), then answer 504 instead of its answer."""

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        headers = {FAULT_HEADER: "lost-answer"}
        message = "injected fault: the request was processed, but its answer was lost"
        await _error(LOST_ANSWER_STATUS, "gateway_timeout", message, headers)(scope, receive, send)
