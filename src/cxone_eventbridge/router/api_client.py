"""The one client of a router's HTTP API (``router/http_api.py``), used by ``cxeb router`` and by the demo.

::

    async with RouterClient("http://127.0.0.1:8790", ingest_key=key) as router:
        ids = await router.ingest([{"eventType": "call.answered"}], priority=1)
        status = await router.status()
        letters = await router.dead_letters(limit=100)
        replayed = await router.replay(target="crm")

- Every call is retried on a connection failure and on the statuses ``retry.classify_status`` calls
  retryable (408, 425, 429, 5xx), waiting what ``Retry-After`` says or an exponential backoff with jitter
  (``retry.next_delay``), at most ``RetrySchedule.max_attempts`` times. Retrying an ingest is safe: an event
  without an ``id`` gets one here, so the router drops the copy of an event it already accepted.
- Sleeping, the wall clock and the jitter are injected (``sleep``, ``now``, ``rng``); ``on_retry`` receives
  a frozen ``RetryNotice`` before each wait (the CLI counts and shows them).
- Failures are ``RouterUnreachableError`` (no answer) or ``RouterRefusedError`` (an error status, with the
  router's code and field errors), both ``RouterClientError``; messages name the request (method and URL)
  in the same words in a retry notice and in the final error, and never contain the ingest key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from cxone_eventbridge.exceptions import FieldError, RouterRefusedError, RouterUnreachableError
from cxone_eventbridge.retry import Outcome, RequestRetries, classify_status, parse_retry_after
from cxone_eventbridge.wire import encode_event

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
NDJSON = "application/x-ndjson"
LIVE_PATH = "/v1/deliveries/live"
_MAX_DETAIL_CHARS = 300


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetrySchedule:
    """How patiently one call is retried: attempts in all, and the backoff between them (seconds)."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0


@dataclass(frozen=True)
class RetryNotice:
    """One retry about to happen: which request, why (the error it got), after how long, which attempt next."""

    request: str
    reason: str
    delay_s: float
    next_attempt: int
    max_attempts: int


def _refusal(request: str, response: httpx.Response, *, now: datetime) -> RouterRefusedError:
    """The router's JSON error body (``error``, ``message``, ``errors``) as an exception naming the request."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code, detail, errors = "", response.reason_phrase or "error", []
    if isinstance(body, dict):
        code = str(body.get("error") or "")
        if isinstance(body.get("message"), str):
            detail = body["message"][:_MAX_DETAIL_CHARS]
        errors = [
            FieldError(str(item.get("field", "")), str(item.get("message", "")))
            for item in body.get("errors") or []
            if isinstance(item, dict)
        ]
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
    return RouterRefusedError(
        f"{request} failed with HTTP {response.status_code}: {detail}",
        status=response.status_code,
        code=code,
        errors=errors,
        retry_after=retry_after,
    )


class RouterClient:
    """A client of one router's HTTP API; ``async with RouterClient(url, ingest_key=...) as router:``."""

    def __init__(
        self,
        url: str,
        *,
        ingest_key: SecretStr | None = None,
        ca_bundle: Path | None = None,
        timeout_s: float = 60.0,
        retry: RetrySchedule | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = _utcnow,
        rng: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._retry = retry or RetrySchedule()
        self._on_retry = on_retry
        self._sleep = sleep
        self._now = now
        self._rng = rng
        headers = {"User-Agent": "cxeb-router-client"}
        if ingest_key is not None:
            headers["Authorization"] = f"Bearer {ingest_key.get_secret_value()}"
        # trust_env stays off: a router is usually on loopback, and a user's HTTP_PROXY must not capture it.
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=timeout_s,
            verify=str(ca_bundle) if ca_bundle is not None else True,
            trust_env=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"RouterClient(url={self.url!r})"

    async def __aenter__(self) -> RouterClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the API's operations ------------------------------------------------------------------------------

    async def ingest(self, events: Sequence[Mapping[str, Any]], *, priority: int | None = None) -> list[str]:
        """Queue ``events`` (an id is added to any without one); the ids, once the router has committed them.

        ``priority`` (0 first ... 9 last) applies to events without a ``priority`` field of their own.
        """
        lines = [encode_for_ingest(event) for event in events]
        return await self.ingest_encoded(lines, priority=priority)

    async def ingest_encoded(self, lines: Sequence[bytes], *, priority: int | None = None) -> list[str]:
        """Queue events already encoded as JSON lines (each with an ``id``), sent as one NDJSON body."""
        params = {"priority": str(priority)} if priority is not None else None
        answer = await self._call(
            "POST", "/v1/events", params=params, content=b"\n".join(lines) + b"\n", content_type=NDJSON
        )
        return [str(event_id) for event_id in answer.get("ids", [])]

    async def status(self, *, target: str | None = None) -> dict[str, Any]:
        """Per-target delivery figures and the queue's depths (``GET /v1/status``); one target's (name or id)."""
        return await self._call("GET", "/v1/status", params={"target": target} if target else None)

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> dict[str, Any]:
        """The newest dead letters first: ``items``, and ``total`` when the router counts them."""
        params = {"limit": str(limit)} | ({"target": target} if target else {})
        return await self._call("GET", "/v1/dead-letters", params=params)

    async def replay(self, *, target: str | None = None, delivery_ids: Sequence[str] | None = None) -> int:
        """Make dead letters pending again: all, a target's, or the named ones; how many."""
        answer = await self._call("POST", "/v1/dead-letters/replay", json_body=_selection(target, delivery_ids))
        return int(answer["replayed"])

    async def purge(self, *, target: str | None = None, delivery_ids: Sequence[str] | None = None) -> int:
        """Delete dead letters for good: all, a target's, or the named ones; how many."""
        answer = await self._call("POST", "/v1/dead-letters/purge", json_body=_selection(target, delivery_ids))
        return int(answer["purged"])

    async def enable(self, target: str) -> dict[str, Any]:
        """Re-enable a target (name or id) the router disabled after its endpoint answered 410 Gone."""
        return await self._target_action(target, "enable")

    async def pause(self, target: str) -> dict[str, Any]:
        """Hold a target's deliveries (name or id) until ``resume``: ``{target, paused, changed}``."""
        return await self._target_action(target, "pause")

    async def resume(self, target: str) -> dict[str, Any]:
        """Release a paused target's deliveries: ``{target, paused, changed}``."""
        return await self._target_action(target, "resume")

    async def probe(self, target: str, *, wait_s: float = 30.0) -> dict[str, Any]:
        """Send the probe of a target's open circuit now; the probe's attempt and the circuit after it."""
        return await self._target_action(target, "probe", params={"wait": f"{wait_s:g}"})

    async def _target_action(
        self, target: str, action: str, *, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await self._call("POST", f"/v1/targets/{quote(target, safe='')}/{action}", params=params, json_body={})

    async def deliveries_live(
        self, *, target: str | None = None, failed: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Delivery attempts as the router makes them (``GET /v1/deliveries/live``, NDJSON), until it ends the
        stream; not retried (a stream picks up where the router is, not where it was)."""
        params = {key: value for key, value in (("target", target), ("failed", "true" if failed else None)) if value}
        request = self._describe("GET", LIVE_PATH)
        # The stream is quiet while nothing is delivered: no read timeout.
        timeout = httpx.Timeout(self._http.timeout.connect or 10.0, read=None)
        try:
            async with self._http.stream(
                "GET", LIVE_PATH, params=params, headers={"Accept": NDJSON}, timeout=timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise _refusal(request, response, now=self._now())
                async for line in response.aiter_lines():
                    if line.strip():  # blank lines keep the connection alive
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise RouterUnreachableError(f"{request} got no answer: {exc or type(exc).__name__}", url=self.url) from exc

    async def metrics(self) -> str:
        """The Prometheus exposition text (``GET /metrics``)."""
        response = await self._send("GET", "/metrics")
        return response.text

    # -- one call, retried ---------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        if json_body is not None:
            content, content_type = json.dumps(json_body).encode(), "application/json"
        response = await self._send(method, path, params=params, content=content, content_type=content_type)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise RouterRefusedError(
                f"{self._describe(method, path)} answered {response.status_code} with a body that is not a JSON object",
                status=response.status_code,
            )
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        request = self._describe(method, path)
        headers = {"Content-Type": content_type} if content_type else None
        retries = RequestRetries(
            max_attempts=self._retry.max_attempts,
            base_s=self._retry.base_delay_s,
            cap_s=self._retry.max_delay_s,
            max_retry_after_s=self._retry.max_delay_s,
            rng=self._rng,
        )
        while True:
            error: RouterRefusedError | RouterUnreachableError
            try:
                response = await self._http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                error = RouterUnreachableError(f"{request} got no answer: {exc or type(exc).__name__}", url=self.url)
                retry_after = None
                cause: BaseException | None = exc
            else:
                if response.is_success:
                    return response
                error, cause = _refusal(request, response, now=self._now()), None
                if classify_status(response.status_code) is not Outcome.RETRY:
                    raise error
                retry_after = error.retry_after
            delay = retries.next_wait(retry_after)
            if delay is None:
                raise error from cause
            self._notify(RetryNotice(request, error.message, delay, retries.attempt, self._retry.max_attempts))
            await self._sleep(delay)

    def _describe(self, method: str, path: str) -> str:
        return f"{method} {self.url}{path}"

    def _notify(self, notice: RetryNotice) -> None:
        log.debug(
            "%s; retrying in %.2f s (attempt %d of %d)",
            notice.reason,
            notice.delay_s,
            notice.next_attempt,
            notice.max_attempts,
        )
        if self._on_retry is not None:
            self._on_retry(notice)


def encode_for_ingest(event: Mapping[str, Any]) -> bytes:
    """One event as the compact JSON line ingest reads, with an ``id`` added when it has none.

    The id makes a retried POST idempotent: the router drops an event whose id it already accepted.
    """
    return encode_event({**event, "id": str(uuid.uuid4())} if "id" not in event else dict(event))


def _selection(target: str | None, delivery_ids: Sequence[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if target:
        body["target"] = target
    if delivery_ids:
        body["deliveryIds"] = list(delivery_ids)
    return body
