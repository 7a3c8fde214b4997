"""The few calls the demo makes to the router's HTTP API (the same routes ``cxeb router`` uses).

Errors become ``DemoError`` naming the route and the router's message, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import aiohttp

from cxone_eventbridge.exceptions import CxebError


class DemoError(CxebError):
    """A demo step did not do what it must (a router call failed, deliveries did not settle in time)."""


class RouterAPI:
    """A small aiohttp client for one router; ``async with RouterAPI(url) as api:``."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url.rstrip("/")
        # trust_env stays off: the router is on loopback, and a user's HTTP_PROXY must not capture it.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def __aenter__(self) -> RouterAPI:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._session.close()

    async def _call(self, method: str, path: str, *, body: bytes | None = None, expect: int = 200) -> Any:
        url = f"{self._base_url}{path}"
        try:
            async with self._session.request(
                method, url, data=body, headers={"Content-Type": "application/json"} if body is not None else None
            ) as response:
                text = await response.text()
                if response.status != expect:
                    raise DemoError(f"{method} {path}: the router answered {response.status}: {text[:300]}")
                return json.loads(text)
        except aiohttp.ClientError as exc:
            raise DemoError(f"{method} {path}: cannot reach the router at {self._base_url}: {exc}") from exc

    async def ingest(self, events: Sequence[dict[str, Any]], *, priority: int) -> list[str]:
        """POST a batch at one priority; the ids, once the router has committed them."""
        body = json.dumps(list(events), separators=(",", ":")).encode()
        answer = await self._call("POST", f"/v1/events?priority={priority}", body=body, expect=202)
        return list(answer["ids"])

    async def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", "/v1/status")
        return answer

    async def dead_letters(self, *, limit: int = 10_000) -> list[dict[str, Any]]:
        answer = await self._call("GET", f"/v1/dead-letters?limit={limit}")
        return list(answer["items"])

    async def replay(self) -> int:
        """Make every dead letter pending again; how many."""
        answer = await self._call("POST", "/v1/dead-letters/replay", body=b"{}")
        return int(answer["replayed"])
