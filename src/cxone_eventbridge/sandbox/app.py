"""The sandbox control-plane server: ``create_app(SandboxConfig) -> FastAPI``.

It serves the contract in ARCHITECTURE.md (OAuth2 token endpoint, the targets routes, the test call, the
routes table) with a real database, per-route scopes, a tenant per client id, per-client rate limits and
optional injected faults. Bad input gets a 4xx naming what is wrong, never a 500. The routes live in
``sandbox/routes/``, one router per resource; this module assembles them with the error handlers, the
OpenAPI document and the middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxone_eventbridge import __version__
from cxone_eventbridge.exceptions import FieldError
from cxone_eventbridge.models import ErrorBody, IntegrationTarget, SigningSecretRotation
from cxone_eventbridge.sandbox.config import SandboxConfig
from cxone_eventbridge.sandbox.errors import SandboxHTTPError, validation_failed
from cxone_eventbridge.sandbox.middleware import BodyLimitMiddleware, FaultMiddleware
from cxone_eventbridge.sandbox.routes import discovery, event_routes, oauth, targets
from cxone_eventbridge.sandbox.state import SandboxState
from cxone_eventbridge.ssrf import Resolver, system_resolver


def _install_error_handlers(app: FastAPI) -> None:
    async def on_sandbox_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SandboxHTTPError)
        return exc.response()

    async def on_request_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            errors.append(FieldError(".".join(loc[1:]) or ".".join(loc), str(error.get("msg", "is invalid"))))
        return validation_failed(errors).response()

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = ErrorBody(error=code, message=str(exc.detail))
        return JSONResponse(body.to_wire(), status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(SandboxHTTPError, on_sandbox_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _openapi_with_input_schemas(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's schema plus the request-body schemas (bodies are parsed by hand, for our own 400/422)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema(
            [(IntegrationTarget, "validation"), (SigningSecretRotation, "validation")],
            ref_template="#/components/schemas/{model}Input",
            by_alias=True,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in defs.get("$defs", {}).items():
            components[f"{name}Input"] = definition
        patch = dict(components["IntegrationTargetInput"])
        patch.pop("required", None)
        patch["title"] = "TargetPatch"
        components["TargetPatchInput"] = patch
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(config: SandboxConfig, *, resolver: Resolver = system_resolver) -> FastAPI:
    """The sandbox server. ``app.state.sandbox`` is its ``SandboxState`` (store, clients, clock)."""
    app = FastAPI(
        title="cxeb sandbox",
        version=__version__,
        description="A local CXone-style control plane for development, demos and tests.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    state = SandboxState(config, resolver=resolver)
    app.state.sandbox = state
    _install_error_handlers(app)
    for router in (oauth.router, discovery.router, targets.router, event_routes.router):
        app.include_router(router)
    app.openapi = _openapi_with_input_schemas(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(FaultMiddleware, faults=state.faults)
    return app
