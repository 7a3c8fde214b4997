"""Discovery: the OpenID configuration, a tenant's API base (CXone's ``cxone-configuration``), liveness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from cxone_eventbridge.sandbox.config import ALL_SCOPES
from cxone_eventbridge.sandbox.routes.oauth import TOKEN_PATH

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/openid-configuration", summary="OpenID configuration")
async def openid_configuration(request: Request) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "issuer": base,
            "token_endpoint": base + TOKEN_PATH,
            "grant_types_supported": ["client_credentials", "password"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": sorted(ALL_SCOPES),
        }
    )


@router.get("/.well-known/cxone-configuration", summary="A tenant's API base")
async def cxone_configuration(
    request: Request, tenant_id: Annotated[str, Query(alias="tenantId", min_length=1, max_length=100)]
) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    return JSONResponse({"tenantId": tenant_id, "api_endpoint": base, "auth_endpoint": base})


@router.get("/health", summary="Liveness")
async def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})
