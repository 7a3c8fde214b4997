"""The sandbox's API errors: one exception type, rendered as the ``ErrorBody`` every client parses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi.responses import JSONResponse

from cxone_eventbridge.exceptions import FieldError, SandboxError
from cxone_eventbridge.models import ErrorBody


class SandboxHTTPError(SandboxError):
    """An API error answer: status, machine-readable code, message, field errors, extra headers."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = ErrorBody(error=self.error, message=self.message, errors=[e.to_wire() for e in self.errors])
        return JSONResponse(body.to_wire(), status_code=self.status, headers=self.headers)


def validation_failed(errors: list[FieldError], message: str = "the request has invalid fields") -> SandboxHTTPError:
    """A 422 naming every invalid field."""
    return SandboxHTTPError(422, "validation_failed", message, errors=errors)


def not_found(target_id: str) -> SandboxHTTPError:
    # repr() keeps hostile ids (control characters) from shaping the message.
    return SandboxHTTPError(404, "not_found", f"no target with id {target_id[:100]!r}")
