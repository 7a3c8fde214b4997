"""What the sandbox's routers share: bearer-token scope checks, the JSON body reader, OpenAPI snippets."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cxone_eventbridge import wire
from cxone_eventbridge.models import ErrorBody
from cxone_eventbridge.sandbox import targets as ops
from cxone_eventbridge.sandbox.config import SCOPE_READ, SCOPE_ROUTES, SCOPE_TEST, SCOPE_WRITE
from cxone_eventbridge.sandbox.errors import SandboxHTTPError
from cxone_eventbridge.sandbox.oauth import InvalidTokenError, Principal
from cxone_eventbridge.sandbox.rate_limit import retry_after_header
from cxone_eventbridge.sandbox.state import state_of

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /oauth/token.")


def _require(scope: str) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        state = state_of(request)
        challenge = 'Bearer realm="cxeb-sandbox"'
        if credentials is None:
            raise SandboxHTTPError(
                401, "unauthorized", "a bearer access token is required", headers={"WWW-Authenticate": challenge}
            )
        try:
            principal = state.issuer.verify(credentials.credentials)
        except InvalidTokenError as exc:
            raise SandboxHTTPError(
                401,
                "invalid_token",
                str(exc),
                headers={"WWW-Authenticate": f'{challenge}, error="invalid_token"'},
            ) from None
        if (wait := state.limiter.acquire(principal.tenant)) is not None:
            raise SandboxHTTPError(
                429,
                "rate_limited",
                f"rate limit of {state.config.rate_limit_per_minute:g} requests per minute exceeded",
                headers={"Retry-After": retry_after_header(wait)},
            )
        if scope not in principal.scopes:
            raise SandboxHTTPError(
                403,
                "insufficient_scope",
                f"this access token lacks the scope {scope}",
                headers={"WWW-Authenticate": f'{challenge}, error="insufficient_scope", scope="{scope}"'},
            )
        return principal

    return dependency


ReadPrincipal = Annotated[Principal, Depends(_require(SCOPE_READ))]
WritePrincipal = Annotated[Principal, Depends(_require(SCOPE_WRITE))]
TestPrincipal = Annotated[Principal, Depends(_require(SCOPE_TEST))]
RoutesPrincipal = Annotated[Principal, Depends(_require(SCOPE_ROUTES))]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=1024)]


async def json_body(request: Request) -> Any:
    """The request's JSON body; 415 for another media type, 400 naming what is wrong with the JSON."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise SandboxHTTPError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.body()
    if not raw.strip():
        raise SandboxHTTPError(400, "invalid_json", "the request body is empty; send a JSON object")
    try:
        body = wire.loads(raw)
    except json.JSONDecodeError as exc:
        raise SandboxHTTPError(
            400, "invalid_json", f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN, an integer beyond the digit limit, deep nesting
        message = str(exc) if isinstance(exc, ValueError) else "it nests too deeply"
        raise SandboxHTTPError(400, "invalid_json", f"the body is not valid JSON: {message[:200]}") from None
    if ops.json_depth_exceeded(body):
        raise SandboxHTTPError(400, "invalid_json", f"the body nests deeper than {ops.MAX_JSON_DEPTH} levels")
    return body


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: each status answers an ``ErrorBody``."""
    return {status: {"model": ErrorBody} for status in statuses}


def body_docs(schema: str) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a body read by hand (``json_body``), described by ``schema``."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    content = {"application/json": {"schema": ref}}
    return {"requestBody": {"required": True, "content": content}}
