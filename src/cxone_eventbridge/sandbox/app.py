"""The sandbox control-plane server: ``create_app(SandboxConfig) -> FastAPI``.

It serves the contract in ARCHITECTURE.md (OAuth2 token endpoint, the targets routes, the test call, the
routes table) with a real database, per-route scopes, a tenant per client id, per-client rate limits and
optional injected faults. Bad input gets a 4xx naming what is wrong, never a 500.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxone_eventbridge import __version__, wire
from cxone_eventbridge.exceptions import FieldError
from cxone_eventbridge.models import (
    ErrorBody,
    IntegrationTarget,
    RoutesTable,
    TargetPage,
    TargetStatus,
    TargetTestResult,
)
from cxone_eventbridge.sandbox import targets as ops
from cxone_eventbridge.sandbox.config import (
    ALL_SCOPES,
    SCOPE_READ,
    SCOPE_ROUTES,
    SCOPE_TEST,
    SCOPE_WRITE,
    SandboxClient,
    SandboxConfig,
)
from cxone_eventbridge.sandbox.errors import SandboxHTTPError, not_found, validation_failed
from cxone_eventbridge.sandbox.faults import FaultInjector
from cxone_eventbridge.sandbox.middleware import BodyLimitMiddleware, FaultMiddleware
from cxone_eventbridge.sandbox.oauth import (
    ClientRegistry,
    InvalidTokenError,
    OAuthError,
    Principal,
    TokenIssuer,
    grant_token,
)
from cxone_eventbridge.sandbox.rate_limit import RateLimiter, retry_after_header
from cxone_eventbridge.sandbox.store import (
    DuplicateIdempotencyKeyError,
    NameTakenError,
    StaleVersionError,
    StoredTarget,
    TargetStore,
)
from cxone_eventbridge.sandbox.tester import client_ssl_context, send_test_event
from cxone_eventbridge.ssrf import EgressPolicy, Resolver, system_resolver

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"  # noqa: S105 -- a URL path
TARGETS_PATH = "/api/v2/integrations/targets"
ROUTES_PATH = "/api/v2/events/routes"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_IDEMPOTENCY_KEY = 255
_CURSOR_PREFIX = "c1."
_TOKEN_KEY_META = "token_signing_key"  # noqa: S105 -- the name of a metadata row


class SandboxState:
    """Everything the routes share; ``app.state.sandbox`` holds it."""

    def __init__(self, config: SandboxConfig, *, resolver: Resolver = system_resolver) -> None:
        self.config = config
        self.clock = config.clock
        self.store = TargetStore(config.db_path)
        self.clients = ClientRegistry(config.clients())
        key = bytes.fromhex(self.store.meta_setdefault(_TOKEN_KEY_META, secrets.token_hex(32)))
        self.issuer = TokenIssuer(key, ttl_s=config.token_ttl_s, clock=config.clock)
        self.limiter = RateLimiter(config.rate_limit_per_minute, config.bucket_size, config.clock)
        self.faults = FaultInjector(config)
        self.egress = EgressPolicy(allow_all=config.allow_private_endpoints)
        self.resolver = resolver

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """Built on first use: loading the system CAs costs tens of milliseconds that most runs never need."""
        return client_ssl_context(str(self.config.ca_bundle) if self.config.ca_bundle else None)

    def register_client(self, client: SandboxClient) -> None:
        """Add a client (a fresh tenant) while the server runs."""
        self.clients.register(client)

    def close(self) -> None:
        self.store.close()


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


_bearer = HTTPBearer(auto_error=False, description="An access token from POST /oauth/token.")


def _require(scope: str) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        state = _state(request)
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


async def _json_body(request: Request) -> Any:
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


def _etag(target_id: str, version: int) -> str:
    return f'"{target_id[-12:]}-{version}"'


def _target_response(stored: StoredTarget, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        ops.public_view(stored.target), status_code=status_code, headers={"ETag": _etag(stored.id, stored.version)}
    )


def _check_if_match(if_match: str | None, stored: StoredTarget) -> None:
    if if_match is None:
        return
    current = _etag(stored.id, stored.version)
    tags = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" not in tags and current not in tags:
        raise SandboxHTTPError(
            412,
            "precondition_failed",
            f"the target changed since that ETag (If-Match {if_match[:80]!r}; current ETag {current})",
            headers={"ETag": current},
        )


def _encode_cursor(seq: int) -> str:
    return f"{_CURSOR_PREFIX}{seq}"


def _decode_cursor(cursor: str) -> int:
    text = cursor.removeprefix(_CURSOR_PREFIX)
    if text == cursor or not text.isascii() or not text.isdigit() or len(text) > 18:
        raise SandboxHTTPError(
            400,
            "invalid_cursor",
            "the cursor is not one this server issued; start again without a cursor",
            errors=[FieldError("cursor", "is not a valid cursor")],
        )
    return int(text)


def _load(state: SandboxState, principal: Principal, target_id: str) -> StoredTarget:
    stored = state.store.get(principal.tenant, target_id)
    if stored is None:
        raise not_found(target_id)
    return stored


def _conflict(name: str) -> SandboxHTTPError:
    return SandboxHTTPError(
        409,
        "conflict",
        f"a target named {name!r} already exists",
        errors=[FieldError("name", "is already used by another target")],
    )


def _request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay(state: SandboxState, principal: Principal, key: str, request_hash: str) -> JSONResponse | None:
    record = state.store.idempotency_record(principal.tenant, key)
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise validation_failed(
            [FieldError("Idempotency-Key", "was already used with a different request body")],
            "this Idempotency-Key was already used with a different request body",
        )
    view = json.loads(record.response)
    headers = {"Idempotent-Replayed": "true", "ETag": _etag(str(view.get("id", "")), 1)}
    return JSONResponse(view, status_code=201, headers=headers)


def _update(state: SandboxState, principal: Principal, stored: StoredTarget, target: IntegrationTarget) -> StoredTarget:
    try:
        return state.store.update(principal.tenant, target, expected_version=stored.version)
    except NameTakenError:
        raise _conflict(target.name) from None
    except StaleVersionError:
        raise SandboxHTTPError(
            412, "precondition_failed", "the target changed while this request was being processed"
        ) from None


def _error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


def _body_docs(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    content = {"application/json": {"schema": ref}}
    return {"requestBody": {"required": True, "content": content}}


def _register_target_routes(app: FastAPI) -> None:
    common = _error_docs(400, 401, 403, 413, 422, 429)

    @app.get(
        TARGETS_PATH,
        tags=["targets"],
        summary="List targets",
        responses={200: {"model": TargetPage}, **common},
    )
    async def list_targets(
        request: Request,
        principal: ReadPrincipal,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
        name: Annotated[str | None, Query(max_length=100, description="Only the target with this name.")] = None,
    ) -> JSONResponse:
        state = _state(request)
        after = _decode_cursor(cursor) if cursor is not None else 0
        rows = state.store.page(principal.tenant, after_seq=after, limit=limit + 1, name=name)
        page, more = rows[:limit], len(rows) > limit
        body = {
            "items": [ops.public_view(row.target) for row in page],
            "nextCursor": _encode_cursor(page[-1].seq) if more else None,
        }
        return JSONResponse(body)

    @app.post(
        TARGETS_PATH,
        tags=["targets"],
        summary="Create a target",
        status_code=201,
        responses={201: {"model": IntegrationTarget}, **common, **_error_docs(409, 415)},
        openapi_extra=_body_docs("IntegrationTargetInput"),
    )
    async def create_target(
        request: Request,
        principal: WritePrincipal,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
        ] = None,
    ) -> JSONResponse:
        state = _state(request)
        body = await _json_body(request)
        request_hash = _request_hash(body) if idempotency_key is not None else ""
        if idempotency_key is not None and (replayed := _replay(state, principal, idempotency_key, request_hash)):
            return replayed
        target = ops.new_target(ops.parse_target(body), now=state.clock())
        view = ops.public_view(target)
        try:
            stored = state.store.insert(
                principal.tenant,
                target,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                response=json.dumps(view),
            )
        except NameTakenError:
            raise _conflict(target.name) from None
        except DuplicateIdempotencyKeyError:
            assert idempotency_key is not None
            replayed = _replay(state, principal, idempotency_key, request_hash)
            assert replayed is not None
            return replayed
        response = _target_response(stored, 201)
        response.headers["Location"] = f"{TARGETS_PATH}/{stored.id}"
        return response

    @app.get(
        TARGETS_PATH + "/{target_id}",
        tags=["targets"],
        summary="Get a target",
        responses={200: {"model": IntegrationTarget}, **common, **_error_docs(404)},
    )
    async def get_target(request: Request, principal: ReadPrincipal, target_id: str) -> JSONResponse:
        return _target_response(_load(_state(request), principal, target_id))

    @app.put(
        TARGETS_PATH + "/{target_id}",
        tags=["targets"],
        summary="Replace a target",
        responses={200: {"model": IntegrationTarget}, **common, **_error_docs(404, 409, 412, 415)},
        openapi_extra=_body_docs("IntegrationTargetInput"),
    )
    async def replace_target(
        request: Request, principal: WritePrincipal, target_id: str, if_match: IfMatch = None
    ) -> JSONResponse:
        state = _state(request)
        stored = _load(state, principal, target_id)
        _check_if_match(if_match, stored)
        body = await _json_body(request)
        target = ops.replaced_target(stored.target, ops.parse_target(body), now=state.clock())
        return _target_response(_update(state, principal, stored, target))

    @app.patch(
        TARGETS_PATH + "/{target_id}",
        tags=["targets"],
        summary="Change some fields of a target (JSON merge patch)",
        responses={200: {"model": IntegrationTarget}, **common, **_error_docs(404, 409, 412, 415)},
        openapi_extra=_body_docs("TargetPatchInput"),
    )
    async def patch_target(
        request: Request, principal: WritePrincipal, target_id: str, if_match: IfMatch = None
    ) -> JSONResponse:
        state = _state(request)
        stored = _load(state, principal, target_id)
        _check_if_match(if_match, stored)
        body = await _json_body(request)
        target = ops.patched_target(stored.target, body, now=state.clock())
        return _target_response(_update(state, principal, stored, target))

    @app.delete(
        TARGETS_PATH + "/{target_id}",
        tags=["targets"],
        summary="Delete a target",
        status_code=204,
        responses={**common, **_error_docs(404, 412)},
    )
    async def delete_target(
        request: Request, principal: WritePrincipal, target_id: str, if_match: IfMatch = None
    ) -> Response:
        state = _state(request)
        stored = _load(state, principal, target_id)
        _check_if_match(if_match, stored)
        try:
            state.store.delete(principal.tenant, target_id, expected_version=stored.version)
        except StaleVersionError:
            raise SandboxHTTPError(
                412, "precondition_failed", "the target changed while this request was being processed"
            ) from None
        return Response(status_code=204)

    @app.post(
        TARGETS_PATH + "/{target_id}/test",
        tags=["targets"],
        summary="Send a synthetic test event to the target's endpoint",
        responses={
            200: {"model": TargetTestResult, "description": "The endpoint answered 2xx."},
            502: {"model": TargetTestResult, "description": "The endpoint answered non-2xx, refused or is forbidden."},
            504: {"model": TargetTestResult, "description": "The endpoint did not answer within timeoutMs."},
            **common,
            **_error_docs(404),
        },
    )
    async def test_target(request: Request, principal: TestPrincipal, target_id: str) -> JSONResponse:
        state = _state(request)
        stored = _load(state, principal, target_id)
        outcome = await send_test_event(
            stored.target,
            policy=state.egress,
            ssl_context=state.ssl_context,
            clock=state.clock,
            resolver=state.resolver,
        )
        if stored.target.status != TargetStatus.DISABLED:
            status = TargetStatus.ACTIVE if outcome.result.passed else TargetStatus.FAILED
            # Re-read: the target may have changed while the test was in flight; then the result is stale.
            latest = state.store.get(principal.tenant, target_id)
            if latest is not None and latest.version == stored.version and latest.target.status != status:
                changed = latest.target.model_copy(
                    update={"status": status, "updated_at": dt.datetime.fromtimestamp(state.clock(), dt.UTC)}
                )
                try:
                    state.store.update(principal.tenant, changed, expected_version=latest.version)
                except StaleVersionError:
                    logger.info("target %s changed during its test; status left as is", target_id)
        return JSONResponse(outcome.result.to_wire(), status_code=outcome.http_status)

    @app.get(
        ROUTES_PATH,
        tags=["routes"],
        summary="The routing table, with secrets, for routers",
        responses={200: {"model": RoutesTable}, **_error_docs(401, 403, 429)},
    )
    async def routes_table(request: Request, principal: RoutesPrincipal) -> JSONResponse:
        state = _state(request)
        items = [ops.routes_view(row.target) for row in state.store.all(principal.tenant)]
        generated = dt.datetime.fromtimestamp(state.clock(), dt.UTC).isoformat().replace("+00:00", "Z")
        return JSONResponse({"items": items, "generatedAt": generated}, headers={"Cache-Control": "no-store"})


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


def _register_oauth_routes(app: FastAPI) -> None:
    @app.post(
        TOKEN_PATH,
        tags=["oauth"],
        summary="OAuth2 token endpoint (client_credentials, password)",
        openapi_extra=_TOKEN_FORM_DOCS,
        responses={400: {"description": "RFC 6749 error"}, 401: {"description": "RFC 6749 invalid_client"}},
    )
    async def token(request: Request) -> JSONResponse:
        state = _state(request)
        try:
            form = await _token_form(request)
            body = grant_token(state.clients, state.issuer, form, request.headers.get("authorization"))
        except OAuthError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @app.get("/.well-known/openid-configuration", tags=["discovery"], summary="OpenID configuration")
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

    @app.get("/.well-known/cxone-configuration", tags=["discovery"], summary="A tenant's API base")
    async def cxone_configuration(
        request: Request, tenant_id: Annotated[str, Query(alias="tenantId", min_length=1, max_length=100)]
    ) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"tenantId": tenant_id, "api_endpoint": base, "auth_endpoint": base})

    @app.get("/health", tags=["discovery"], summary="Liveness")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})


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
            [(IntegrationTarget, "validation")], ref_template="#/components/schemas/{model}Input", by_alias=True
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
    _register_oauth_routes(app)
    _register_target_routes(app)
    app.openapi = _openapi_with_input_schemas(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(FaultMiddleware, faults=state.faults)
    return app
