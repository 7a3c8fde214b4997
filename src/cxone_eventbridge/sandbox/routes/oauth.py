"""The OAuth2 token endpoint (RFC 6749): ``client_credentials`` and ``password`` grants, form-encoded."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cxone_eventbridge.sandbox.oauth import OAuthError, grant_token
from cxone_eventbridge.sandbox.rate_limit import retry_after_header
from cxone_eventbridge.sandbox.state import state_of

TOKEN_PATH = "/oauth/token"  # noqa: S105 -- a URL path

_TOKEN_FORM_DOCS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials", "password"]},
                        "scope": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "username": {"type": "string"},
                        "password": {"type": "string"},
                    },
                    "required": ["grant_type"],
                }
            }
        },
    }
}

router = APIRouter(tags=["oauth"])


async def _token_form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ("", "application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "send the token request as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the form body cannot be parsed") from exc
    form = dict(pairs)
    if len(form) != len(pairs):
        raise OAuthError("invalid_request", "a parameter was sent more than once")
    return form


@router.post(
    TOKEN_PATH,
    summary="OAuth2 token endpoint (client_credentials, password)",
    openapi_extra=_TOKEN_FORM_DOCS,
    responses={
        400: {"description": "RFC 6749 error"},
        401: {"description": "RFC 6749 invalid_client"},
        429: {"description": "Too many token requests (with --token-rate-limit); see Retry-After"},
    },
)
async def token(request: Request) -> JSONResponse:
    state = state_of(request)
    if state.token_limiter is not None and (wait := state.token_limiter.acquire("token")) is not None:
        # RFC 6749 has no rate-limit error; real identity providers answer 429 with Retry-After.
        body = {"error": "rate_limited", "error_description": "too many token requests; retry later"}
        return JSONResponse(body, status_code=429, headers={"Retry-After": retry_after_header(wait)})
    try:
        form = await _token_form(request)
        body = grant_token(state.clients, state.issuer, form, request.headers.get("authorization"))
    except OAuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
