"""The one request function every API call goes through: pacing, retries, idempotency, error conversion.

- Retried: 429 (waiting what ``Retry-After`` says, as seconds or as an HTTP date), 408/425, 5xx and
  connection failures (exponential backoff with jitter). Attempts are bounded by ``max_attempts``, and the
  time spent waiting between them by ``max_retry_wait_s``: a server asking for a longer wait than the
  budget has left gets the error now, not an endless sleep.
- Every POST carries an ``Idempotency-Key``, the same one on each retry, so a create whose answer was lost
  is not made twice.
- Calls that must never repeat (``POST /targets/{id}/test`` sends a real event) pass ``retry=False``.
- httpx errors and error statuses become ``exceptions.py`` classes here, once. An https URL answered in
  plain HTTP is a ``ConfigurationError`` at once (no retry can fix a setting).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import httpx

from cxone_eventbridge.api._errors import error_from_response, error_from_transport
from cxone_eventbridge.api._rate_limit import RateLimiter
from cxone_eventbridge.exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    ConfigurationError,
    RateLimitError,
)
from cxone_eventbridge.retry import Outcome, RequestRetries, classify_status

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryConfig:
    """How patiently a request is retried."""

    max_attempts: int = 4
    max_retry_wait_s: float = 60.0  # total seconds slept between the attempts of one request
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0


class RequestOptions(TypedDict, total=False):
    """What one request may say besides its method and URL (``RequestSender.request`` has the defaults)."""

    json: Any
    params: Mapping[str, str | int] | None
    headers: Mapping[str, str] | None
    idempotency_key: str | None
    retry: bool
    accept_statuses: frozenset[int]


def _is_retryable(error: APIError) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, APIStatusError):
        return classify_status(error.status_code) is Outcome.RETRY
    return False


class RequestSender:
    """Sends API requests through an ``httpx.AsyncClient`` with the policy above."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        retry: RetryConfig,
        limiter: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = _utcnow,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._retry = retry
        self._limiter = limiter
        self._sleep = sleep
        self._now = now
        self._rng = rng

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        retry: bool = True,
        accept_statuses: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one logical request; return the 2xx (or ``accept_statuses``) response or raise APIError."""
        method = method.upper()
        request_headers = dict(headers or {})
        if method == "POST":
            request_headers[IDEMPOTENCY_HEADER] = idempotency_key or uuid.uuid4().hex
        retries = RequestRetries(
            max_attempts=self._retry.max_attempts,
            base_s=self._retry.base_delay_s,
            cap_s=self._retry.max_delay_s,
            # Retry-After is taken as given (no max_retry_after_s): one beyond the budget gives up at once.
            max_total_wait_s=self._retry.max_retry_wait_s,
            rng=self._rng,
        )
        while True:
            if self._limiter is not None:
                await self._limiter.acquire()
            error: APIError
            cause: BaseException | None = None
            try:
                response = await self._client.request(method, url, json=json, params=params, headers=request_headers)
            except httpx.TransportError as exc:
                request = self._request_of(exc, method, url)
                if _plain_http_on_tls(exc, request):
                    origin = f"{request.url.host}:{request.url.port}" if request.url.port else request.url.host
                    raise ConfigurationError(
                        f"https://{origin} answered in plain HTTP, not TLS: use http://{origin} in CXONE_BASE_URL "
                        "(and CXONE_TOKEN_URL, if set)"
                    ) from exc
                error, cause = error_from_transport(exc, request), exc
            except APIStatusError as exc:  # raised by the auth flow for a failed token request
                error = exc
            else:
                if response.is_success or response.status_code in accept_statuses:
                    return response
                if method == "DELETE" and retries.attempt > 1 and response.status_code == 404:
                    # DELETE is idempotent: a 404 on a retry means an earlier attempt, whose answer was
                    # lost, already deleted it. The caller asked for "gone", and it is.
                    return response
                error = error_from_response(response, now=self._now())
            retry_after = error.retry_after if isinstance(error, RateLimitError) else None
            delay = retries.next_wait(retry_after) if retry and _is_retryable(error) else None
            if delay is None:
                raise error from cause
            # The same words as the error raised when the retries run out: one request, named alike.
            log.warning(
                "%s; retrying in %.2f s (attempt %d of %d)",
                error.message.split("\n", 1)[0],
                delay,
                retries.attempt,
                self._retry.max_attempts,
            )
            await self._sleep(delay)

    def _request_of(self, exc: httpx.TransportError, method: str, url: str) -> httpx.Request:
        try:
            return exc.request
        except RuntimeError:  # httpx raises when the error was created without a request
            return self._client.build_request(method, url)


def _plain_http_on_tls(exc: httpx.TransportError, request: httpx.Request) -> bool:
    """True when an https URL reached a server that answered in plain HTTP (a setting, not a network blip)."""
    text = str(exc)
    return request.url.scheme == "https" and ("WRONG_VERSION_NUMBER" in text or "record layer failure" in text)
