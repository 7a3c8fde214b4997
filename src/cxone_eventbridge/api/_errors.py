"""The boundary where httpx's answers and failures become this package's exceptions, once.

An error status becomes the ``APIStatusError`` subclass that ``exceptions.status_error_class`` picks; a
transport failure becomes ``APIConnectionError`` (or ``APITimeoutError``). Messages are built from the
server's error body and the request line, never from headers, so no credential can leak into one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from cxone_eventbridge.exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    FieldError,
    RateLimitError,
    UnprocessableEntityError,
    status_error_class,
)
from cxone_eventbridge.models import field_errors
from cxone_eventbridge.retry import parse_retry_after

_MAX_DETAIL_CHARS = 500


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _field_errors(body: Any) -> list[FieldError]:
    raw = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(raw, list):
        return []
    errors: list[FieldError] = []
    for item in raw:
        if isinstance(item, dict):
            field = item.get("field", item.get("loc", ""))
            if isinstance(field, list):  # FastAPI's native ``loc`` list
                field = ".".join(str(part) for part in field)
            errors.append(FieldError(str(field or ""), str(item.get("message", item.get("msg", "is invalid")))))
        else:
            errors.append(FieldError("", str(item)))
    return errors


def _detail(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict):
        code = body.get("error")
        # ``message`` in the API's error body; ``error_description`` in an RFC 6749 token error.
        text = body.get("message") or body.get("error_description") or body.get("detail")
        parts = [str(p) for p in (code, text) if isinstance(p, str) and p]
        if parts:
            return ": ".join(parts)[:_MAX_DETAIL_CHARS]
    return response.reason_phrase or "error"


def error_from_response(
    response: httpx.Response, *, action: str | None = None, now: datetime | None = None
) -> APIStatusError:
    """The exception for an error response (its body must already be read)."""
    status = response.status_code
    body = _body(response)
    what = action or f"{response.request.method} {response.request.url.path}"
    message = f"{what} failed with HTTP {status}: {_detail(body, response)}"
    request_id = response.headers.get("x-request-id")
    cls = status_error_class(status)
    if cls is UnprocessableEntityError:
        return UnprocessableEntityError(
            message, status_code=status, body=body, request_id=request_id, errors=_field_errors(body)
        )
    if cls is RateLimitError:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=now or datetime.now(UTC))
        return RateLimitError(message, status_code=status, body=body, request_id=request_id, retry_after=retry_after)
    return cls(message, status_code=status, body=body, request_id=request_id)


def error_from_transport(exc: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    """The exception for a request that got no answer."""
    where = f"{request.method} {request.url.scheme}://{request.url.netloc.decode('ascii')}{request.url.path}"
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{where} timed out ({reason})")
    return APIConnectionError(f"{where} got no answer: {reason}")


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_model(model: type[ModelT], response: httpx.Response) -> ModelT:
    """The response body as ``model``; a body the client cannot read is an APIError naming the fields."""
    what = f"{response.request.method} {response.request.url.path}"
    try:
        return model.model_validate(response.json())
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            problems = "; ".join(str(e) for e in field_errors(exc)[:5])
            raise APIError(f"{what} returned a {model.__name__} the client cannot read: {problems}") from exc
        raise APIError(f"{what} returned a body that is not JSON") from exc
