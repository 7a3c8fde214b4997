"""Every error this package raises, in one tree.

::

    CxebError
     ├── SignatureVerificationError      a webhook signature is missing, stale or wrong
     ├── EgressDeniedError               a destination resolves to a refused address (SSRF guard)
     ├── QueueError                      the durable delivery queue could not complete an operation
     │    ├── QueueFullError             the disk (or the queue's size cap) is full; ingest answers 503
     │    ├── QueueClosedError           the queue was used after close()
     │    ├── QueueUnavailableError      the queue's database cannot be reached now; ingest answers 503
     │    ├── QueueSchemaError           the queue's schema is newer than this version knows, or not migrated
     │    ├── QueueCorruptError          the queue's file fails SQLite's integrity check at start
     │    └── QueueInUseError            another router holds the SQLite queue file (router/queue_owner.py)
     ├── IngestError                     the router's HTTP API refuses a request: HTTP status, code, fields
     ├── AuditLineError                  an audit line is malformed or fails its hash (also a ValueError)
     ├── RouterClientError               a call to a router's HTTP API failed (router/api_client.py)
     │    ├── RouterUnreachableError     the call got no answer; ``url`` is where the router was expected
     │    └── RouterRefusedError         the router answered an error status: ``status``, ``code``, ``errors``
     ├── DemoError                       a step of ``cxeb demo`` did not do what it must
     ├── SandboxError                    the sandbox server's own errors (its modules define them)
     │    ├── SandboxHTTPError           an API error answer: status, code, field errors (sandbox/errors.py)
     │    ├── OAuthError                 an RFC 6749 token-endpoint error (sandbox/oauth.py)
     │    ├── InvalidTokenError          a bearer token that is malformed, forged or expired (sandbox/oauth.py)
     │    ├── NameTakenError             a tenant's target name is taken (sandbox/store.py)
     │    ├── DuplicateIdempotencyKeyError  an Idempotency-Key already has a response (sandbox/store.py)
     │    └── StaleVersionError          the target changed since it was read (sandbox/store.py)
     ├── InputError                      bad user input (files, flags, bodies); CLI exit code 2
     │    ├── ConfigurationError         a setting is missing or invalid
     │    ├── TargetsFileError           a targets file cannot be read or is invalid
     │    ├── InvalidPatternError        an event pattern or filter is invalid (also a ValueError)
     │    ├── InvalidTransformError      a target's input, inputPath or inputTransformer is invalid (a ValueError)
     │    ├── InvalidEventError          an event to match is not an object, or too costly to match
     │    └── UnknownTargetError         a router command names no target the router knows, or two of them
     └── APIError                        talking to the control plane failed; CLI exit code 1
          ├── APIConnectionError         the request never got an answer
          │    └── APITimeoutError
          └── APIStatusError             the server answered with an error status
               ├── BadRequestError              400
               ├── AuthenticationError          401 (and OAuth2 token errors)
               ├── PermissionDeniedError        403
               ├── NotFoundError                404
               ├── ConflictError                409
               ├── PreconditionFailedError      412 (stale If-Match)
               ├── RequestTooLargeError         413
               ├── UnprocessableEntityError     422, with field-level ``errors``
               ├── RateLimitError               429, with ``retry_after``
               └── InternalServerError          5xx

Errors from httpx are converted once, at the HTTP boundary (``api/_http.py``), with ``raise ... from exc``.
Messages never contain secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field, named by its wire-form path (``retryPolicy.maxRetries``)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def to_wire(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class CxebError(Exception):
    """Base class of every error raised by cxone-eventbridge."""


class SignatureVerificationError(CxebError):
    """A Standard Webhooks signature is missing, outside the tolerance window, or does not match."""


class EgressDeniedError(CxebError):
    """A request's destination resolves to a private, loopback, link-local or metadata address."""


class QueueError(CxebError):
    """The durable delivery queue could not complete an operation; nothing it had acknowledged is lost."""


class QueueFullError(QueueError):
    """The queue's storage is full ("database or disk is full"); the operation was rolled back."""


class QueueClosedError(QueueError):
    """The queue was used after it was closed."""


class QueueUnavailableError(QueueError):
    """The queue's database cannot be reached now (down, restarting); nothing was committed."""


class QueueCorruptError(QueueError):
    """The queue's SQLite file is damaged (``PRAGMA quick_check`` at open found problems); it is not used."""


class QueueSchemaError(QueueError):
    """The queue's schema is newer than this version of cxeb knows, or older and not migrated yet."""


class QueueInUseError(QueueError):
    """Another router process holds the queue file's owner lock; the message names that process."""


class IngestError(CxebError):
    """A request the router's HTTP API refuses, with its HTTP status, a short code (a metrics label) and field errors.

    ``errors`` are ``(field, message)`` pairs, fields named as the request names them (``[3].id``,
    ``line 7``, ``priority``). ``counted`` is set when the router already published ``IngestRejected`` for it.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: Sequence[tuple[str, str]] = (),
        *,
        counted: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = list(errors)
        self.counted = counted

    def body(self) -> dict[str, Any]:
        """The JSON error body the HTTP API answers with, the same shape as the control plane's."""
        return {
            "error": self.code,
            "message": self.message,
            "errors": [{"field": f, "message": m} for f, m in self.errors],
        }


class AuditLineError(CxebError, ValueError):
    """A line is not a well-formed audit line, or its content does not match its hash."""


class RouterClientError(CxebError):
    """A call to a router's HTTP API failed; ``message`` names the request (method and URL)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RouterUnreachableError(RouterClientError):
    """The call got no answer (refused, reset, timed out, TLS failure); ``url`` is the router's base URL."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class RouterRefusedError(RouterClientError):
    """The router answered an error status; ``code`` and ``errors`` are its JSON error body's."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "",
        errors: Sequence[FieldError] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.errors: list[FieldError] = list(errors)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return "\n".join([self.message, *(f"  - {e}" for e in self.errors)])


class DemoError(CxebError):
    """A demo step did not do what it must (a router call failed, deliveries did not settle in time)."""


class SandboxError(CxebError):
    """An error of the sandbox control-plane server; its subclasses live in the sandbox modules that raise them.

    They depend on the sandbox's web framework or store, which the client and the router never import.
    """


class InputError(CxebError):
    """Invalid input from the user; the CLI exits with code 2."""

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[FieldError] = list(errors or [])

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        lines = [self.message, *(f"  - {e}" for e in self.errors)]
        return "\n".join(lines)


class ConfigurationError(InputError):
    """A required setting is missing or invalid."""


class TargetsFileError(InputError):
    """A targets file cannot be read, parsed or validated."""


class InvalidPatternError(InputError, ValueError):
    """An event pattern or filter is invalid; raised when it is compiled, never while matching."""


class InvalidTransformError(InputError, ValueError):
    """A target's ``input``, ``inputPath`` or ``inputTransformer`` is invalid; raised at validation."""


class InvalidEventError(InputError):
    """An event given to the matcher is not a JSON object, or would cost more than the table's bound to match."""


class UnknownTargetError(InputError):
    """A target named by name or control-plane id that the router does not know, or that names two targets.

    ``known`` lists what the router does know (names, with their ids where it has them).
    """

    def __init__(self, message: str, *, known: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.known = list(known)


class APIError(CxebError):
    """The control-plane API could not complete a request."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(APIError):
    """The request got no answer (DNS, refused connection, TLS failure, reset)."""


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIStatusError(APIError):
    """The server answered with a non-success status."""

    status_code: int = 0

    def __init__(self, message: str, *, status_code: int, body: Any = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """400: the request was malformed."""


class AuthenticationError(APIStatusError):
    """401, or the token endpoint refused the credentials."""


class PermissionDeniedError(APIStatusError):
    """403: the token lacks a scope the route needs."""


class NotFoundError(APIStatusError):
    """404: no such target."""


class ConflictError(APIStatusError):
    """409: a target with that name already exists."""


class PreconditionFailedError(APIStatusError):
    """412: the ``If-Match`` ETag is stale; someone else changed the target."""


class RequestTooLargeError(APIStatusError):
    """413: the body is over the server's limit."""


class UnprocessableEntityError(APIStatusError):
    """422: the body was understood but a field is invalid; ``errors`` names each field."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        request_id: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, request_id=request_id)
        self.errors: list[FieldError] = list(errors or [])

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        return "\n".join([self.message, *(f"  - {e}" for e in self.errors)])


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` is the server's advice in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, request_id=request_id)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an error status: the table above, 5xx as one class, else the base."""
    if status_code >= 500:
        return InternalServerError
    return STATUS_ERRORS.get(status_code, APIStatusError)
