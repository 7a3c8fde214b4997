"""Wire models: the one schema that the client sends, the sandbox serves and the router routes by.

Wire JSON is camelCase; snake_case keys and the nulls that the original tutorial's client sends are
accepted too. Secrets are ``SecretStr``: they never appear in ``repr``, and they are serialized only when
the caller asks with ``to_wire(reveal_secrets=True)`` (a create or update request, the routes table).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from cxone_eventbridge import secret_refs
from cxone_eventbridge.exceptions import FieldError, InvalidPatternError, InvalidTransformError
from cxone_eventbridge.matching.filters import FilterOperator, check_filter_value
from cxone_eventbridge.matching.patterns import compile_pattern
from cxone_eventbridge.signing import validate_signing_secret
from cxone_eventbridge.ssrf import canonical_host
from cxone_eventbridge.transform import check_constant_input, compile_template, parse_json_path

_REVEAL_SECRETS = "reveal_secrets"

# Headers a target's api_key may not replace: they belong to HTTP itself or to the delivery's signature.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "cookie",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
OAUTH_SECRET_PATH = "authentication.oauth.clientSecret"  # noqa: S105 -- a field path, not a secret
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
MAX_FILTERS = 50
MAX_ENDPOINT_LENGTH = 2048


class WireModel(BaseModel):
    """camelCase on the wire, snake_case accepted, unknown keys refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        hide_input_in_errors=True,
    )

    def to_wire(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The JSON-ready camelCase form; secrets are null unless ``reveal_secrets``."""
        return self.model_dump(mode="json", by_alias=True, context={_REVEAL_SECRETS: reveal_secrets})


def _dump_secret(value: SecretStr | None, info: SerializationInfo) -> str | None:
    if value is None:
        return None
    context = info.context
    if isinstance(context, dict) and context.get(_REVEAL_SECRETS):
        return value.get_secret_value()
    return None


class AuthType(StrEnum):
    BEARER = "bearer"
    BASIC = "basic"
    API_KEY = "api_key"
    OAUTH_CLIENT_CREDENTIALS = "oauth_client_credentials"
    NONE = "none"


class BackoffStrategy(StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


class TargetStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"
    DISABLED = "disabled"


_FORM_FIELDS_RESERVED = frozenset({"grant_type", "client_id", "client_secret", "scope"})
MAX_SCOPES = 50
MAX_TOKEN_EXTRAS = 20


class OAuthClientCredentials(WireModel):
    """``authentication.oauth`` of an ``oauth_client_credentials`` target: where and how to get its token.

    ``clientSecret`` is write-only, as ``authentication.value`` is: the read form shows its fingerprint
    instead.
    """

    token_url: str
    client_id: str = Field(min_length=1, max_length=256)
    client_secret: SecretStr | None = None
    scopes: list[str] = Field(default_factory=list, max_length=MAX_SCOPES)
    token_form_fields: dict[str, str] = Field(default_factory=dict, max_length=MAX_TOKEN_EXTRAS)
    token_headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_TOKEN_EXTRAS)

    @field_validator("token_url")
    @classmethod
    def _token_url_is_https(cls, url: str) -> str:
        return _check_endpoint(url)

    @field_validator("client_id")
    @classmethod
    def _client_id_is_printable(cls, client_id: str) -> str:
        if not client_id.isprintable():
            raise ValueError("must not contain control characters")
        return client_id

    @field_validator("client_secret")
    @classmethod
    def _client_secret_text(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is None:
            return None
        text = secret.get_secret_value()
        if not text:
            return None
        if secret_refs.is_reference(text):
            return secret
        if (problem := secret_refs.reference_syntax_error(text)) is not None:
            raise ValueError(problem)
        if any(ch in text for ch in "\r\n\x00"):
            raise ValueError("must not contain line breaks or NUL characters")
        return secret

    @field_validator("scopes")
    @classmethod
    def _scopes_are_tokens(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            # RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if not scope or any(not 0x21 <= ord(ch) <= 0x7E or ch in '"\\' for ch in scope):
                raise ValueError(
                    f"{scope[:64]!r} is not a scope token (printable ASCII without spaces, quotes or backslashes)"
                )
        return scopes

    @field_validator("token_form_fields")
    @classmethod
    def _form_fields_are_extra(cls, fields: dict[str, str]) -> dict[str, str]:
        for name in fields:
            if not name or name.lower() in _FORM_FIELDS_RESERVED:
                raise ValueError(f"{name!r} is set by the client-credentials grant itself")
        return fields

    @field_validator("token_headers")
    @classmethod
    def _headers_are_valid(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HTTP_TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower() in RESERVED_HEADERS or name.lower() == "accept":
                raise ValueError(f"{name!r} is a reserved header")
            if any(ch in value for ch in "\r\n\x00"):
                raise ValueError(f"the value of {name!r} must not contain line breaks or NUL characters")
        return headers

    @field_serializer("client_secret")
    def _serialize_client_secret(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        return _dump_secret(secret, info)


class TargetAuthentication(WireModel):
    """How deliveries authenticate to the endpoint. ``value`` is write-only on the API."""

    type: AuthType = AuthType.NONE
    # Declared before ``value``: the value's validator needs to know whether this is a read-back form.
    value_fingerprint: str | None = None
    value: SecretStr | None = Field(default=None, validate_default=True)
    header_name: str | None = Field(default=None, validate_default=True)
    oauth: OAuthClientCredentials | None = Field(default=None, validate_default=True)

    @field_validator("value")
    @classmethod
    def _value_fits_type(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        auth_type = info.data.get("type")
        if auth_type is None:
            return value
        text = value.get_secret_value() if value is not None else ""
        if auth_type == AuthType.NONE:
            if text:
                raise ValueError("must be empty when authentication.type is none")
            return None
        if auth_type == AuthType.OAUTH_CLIENT_CREDENTIALS:
            if text:
                raise ValueError(
                    "must be empty when authentication.type is oauth_client_credentials (use oauth.clientSecret)"
                )
            return None
        if not text:
            if info.data.get("value_fingerprint"):
                return None  # the read-back form: the server holds the secret
            raise ValueError(f"is required when authentication.type is {auth_type.value}")
        if secret_refs.is_reference(text):
            return value
        if (problem := secret_refs.reference_syntax_error(text)) is not None:
            raise ValueError(problem)
        if any(ch in text for ch in "\r\n\x00"):
            raise ValueError("must not contain line breaks or NUL characters")
        if auth_type == AuthType.BASIC:
            user, sep, password = text.partition(":")
            if not sep or not user or not password:
                raise ValueError("must be 'user:password' when authentication.type is basic")
        return value

    @field_validator("header_name")
    @classmethod
    def _header_name_fits_type(cls, header_name: str | None, info: ValidationInfo) -> str | None:
        auth_type = info.data.get("type")
        if auth_type != AuthType.API_KEY:
            if header_name:
                raise ValueError("is used only when authentication.type is api_key")
            return None
        if not header_name:
            return "X-API-Key"
        if not _HTTP_TOKEN.match(header_name):
            raise ValueError(f"{header_name!r} is not a valid HTTP header name")
        if header_name.lower() in RESERVED_HEADERS:
            raise ValueError(f"{header_name!r} is a reserved header and cannot carry an API key")
        return header_name

    @field_validator("oauth")
    @classmethod
    def _oauth_fits_type(
        cls, oauth: OAuthClientCredentials | None, info: ValidationInfo
    ) -> OAuthClientCredentials | None:
        auth_type = info.data.get("type")
        if auth_type is None:
            return oauth
        if auth_type != AuthType.OAUTH_CLIENT_CREDENTIALS:
            if oauth is not None:
                raise ValueError("is used only when authentication.type is oauth_client_credentials")
            return None
        if oauth is None:
            raise ValueError("is required when authentication.type is oauth_client_credentials")
        if oauth.client_secret is None and not info.data.get("value_fingerprint"):
            raise ValueError("clientSecret is required when authentication.type is oauth_client_credentials")
        return oauth

    @field_serializer("value")
    def _serialize_value(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        return _dump_secret(value, info)

    @property
    def secret(self) -> SecretStr | None:
        """The credential this authentication holds: ``value``, or ``oauth.clientSecret`` for OAuth."""
        if self.type is AuthType.OAUTH_CLIENT_CREDENTIALS:
            return self.oauth.client_secret if self.oauth is not None else None
        return self.value

    @property
    def secret_path(self) -> str:
        """The wire path of :attr:`secret`, for messages."""
        if self.type is AuthType.OAUTH_CLIENT_CREDENTIALS:
            return OAUTH_SECRET_PATH
        return "authentication.value"

    def with_secret(self, secret: SecretStr | None) -> TargetAuthentication:
        """A copy holding ``secret`` where this type keeps its credential."""
        if self.type is AuthType.OAUTH_CLIENT_CREDENTIALS and self.oauth is not None:
            return self.model_copy(update={"oauth": self.oauth.model_copy(update={"client_secret": secret})})
        return self.model_copy(update={"value": secret})


class PreviousSigningSecret(WireModel):
    """The signing secret a rotation replaced, still signed with until ``expiresAt`` (the grace period).

    ``secret`` is served only in the routes table (to routers); the targets routes show ``fingerprint``.
    """

    secret: SecretStr | None = None
    fingerprint: str | None = None
    expires_at: datetime

    @field_validator("secret")
    @classmethod
    def _secret_is_whsec(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            validate_signing_secret(secret.get_secret_value())
        return secret

    @field_serializer("secret")
    def _serialize_secret(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        return _dump_secret(secret, info)

    def active_at(self, now: float) -> bool:
        """True while the grace period lasts (``now`` in seconds since the epoch)."""
        return now < self.expires_at.timestamp()


class RetryPolicy(WireModel):
    """How often and how patiently a delivery is retried."""

    max_retries: int = Field(default=3, ge=0, le=10, strict=True)
    backoff_strategy: BackoffStrategy = BackoffStrategy.EXPONENTIAL
    timeout_ms: int = Field(default=5000, ge=1000, le=30000, strict=True)


class EventFilter(WireModel):
    """The tutorial's simple filter ``{field, operator, value}``; a target's filters are ANDed."""

    field: str = Field(min_length=1, max_length=256)
    operator: FilterOperator
    value: Any = Field(default=None, validate_default=True)

    @field_validator("field")
    @classmethod
    def _field_is_a_path(cls, field: str) -> str:
        if any(not part for part in field.split(".")):
            raise ValueError(f"{field!r} is not a dotted field path (empty segment)")
        return field

    @field_validator("value")
    @classmethod
    def _value_fits_operator(cls, value: Any, info: ValidationInfo) -> Any:
        operator = info.data.get("operator")
        if operator is None:
            return value
        return check_filter_value(operator, value)


def _check_endpoint(endpoint: str) -> str:
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise ValueError(f"is {len(endpoint)} characters; the limit is {MAX_ENDPOINT_LENGTH}")
    if endpoint != endpoint.strip() or any(ch.isspace() for ch in endpoint):
        raise ValueError("must not contain whitespace")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from exc
    if parts.scheme.lower() != "https":
        raise ValueError("must be an https:// URL (CXone delivers only over HTTPS)")
    if not parts.hostname:
        raise ValueError("must name a host")
    # The host must be in the one spelling every HTTP stack reads alike, so that the address the SSRF
    # guard checks is the address that is connected to (127.0.0.1 in full-width digits is 127.0.0.1 to yarl).
    canonical_host(parts.hostname)
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials; put them in authentication")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if port == 0:
        raise ValueError("must not use port 0")
    return endpoint


class InputTransformer(WireModel):
    """EventBridge's input transformer: variables read by JSON paths, placed into a template.

    The semantics (placeholders inside and outside quotes, missing paths, predefined variables) are in
    :mod:`cxone_eventbridge.transform`; everything is checked here, at validation, never at delivery.
    """

    input_paths_map: dict[str, str] = Field(default_factory=dict)
    input_template: str

    @field_validator("input_paths_map")
    @classmethod
    def _paths_are_json_paths(cls, paths: dict[str, str]) -> dict[str, str]:
        problems = _transform_problems(paths, "x", "inputPathsMap")
        if problems:
            raise ValueError("; ".join(problems))
        return paths

    @field_validator("input_template")
    @classmethod
    def _template_fits_its_variables(cls, template: str, info: ValidationInfo) -> str:
        paths = info.data.get("input_paths_map")
        if paths is None:
            return template  # the paths map is invalid and reported; the template is checked once it is fixed
        problems = _transform_problems(paths, template, "inputTemplate")
        if problems:
            raise ValueError("; ".join(problems))
        return template


def _transform_problems(paths: dict[str, str], template: str, field: str) -> list[str]:
    """The problems ``transform.compile_template`` finds in one of the transformer's two fields."""
    try:
        compile_template(paths, template, where="")
    except InvalidTransformError as exc:
        return [
            f"{error.field.removeprefix(field + '.')}: {error.message}" if error.field != field else error.message
            for error in exc.errors
            if error.field == field or error.field.startswith(field + ".")
        ]
    return []


_NULLABLE_WITH_DEFAULTS = ("authentication", "retryPolicy", "retry_policy", "eventFilters", "event_filters")


class IntegrationTarget(WireModel):
    """A webhook target. ``id``, ``status`` and the timestamps are set by the server."""

    id: str | None = None
    name: str = Field(min_length=1, max_length=100)
    type: Literal["webhook"] = "webhook"
    endpoint: str
    authentication: TargetAuthentication = Field(default_factory=TargetAuthentication)
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    event_filters: list[EventFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    event_pattern: dict[str, Any] | None = None
    # What the target receives instead of the event (at most one; see transform.py): a constant JSON text,
    # the part of the event a JSON path finds, or an input transformer's output.
    input: str | None = None
    input_path: str | None = None
    input_transformer: InputTransformer | None = None
    description: str | None = Field(default=None, max_length=1000)
    signing_secret: SecretStr | None = None
    # Delivery limits held across every router sharing a queue (as EventBridge API destinations' rate).
    max_in_flight: int | None = Field(default=None, ge=1, le=10_000)
    rate_limit_per_second: float | None = Field(default=None, gt=0, le=10_000)
    # Read back only: the current signing secret's fingerprint, and the secret a rotation replaced while
    # its grace period lasts (set by the rotate-secret operation, never by a targets file).
    signing_secret_fingerprint: str | None = None
    previous_signing_secret: PreviousSigningSecret | None = None
    status: TargetStatus | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls_that_mean_default(cls, data: Any) -> Any:
        # The tutorial's client sends ``"retryPolicy": null`` and the like; null means "the default".
        if isinstance(data, dict) and any(data.get(key, ...) is None for key in _NULLABLE_WITH_DEFAULTS):
            return {k: v for k, v in data.items() if not (k in _NULLABLE_WITH_DEFAULTS and v is None)}
        return data

    @field_validator("name")
    @classmethod
    def _name_is_printable(cls, name: str) -> str:
        if name != name.strip():
            raise ValueError("must not start or end with whitespace")
        if any(not ch.isprintable() for ch in name):
            raise ValueError("must not contain control characters")
        return name

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_https(cls, endpoint: str) -> str:
        return _check_endpoint(endpoint)

    @field_validator("event_pattern", mode="before")
    @classmethod
    def _pattern_compiles(cls, pattern: Any) -> Any:
        if pattern is None:
            return None
        try:
            compiled = compile_pattern(pattern)
        except InvalidPatternError as exc:
            raise ValueError(exc.message) from exc
        return compiled.source

    @field_validator("input")
    @classmethod
    def _input_is_json_text(cls, text: str | None) -> str | None:
        return None if text is None else check_constant_input(text)

    @field_validator("input_path")
    @classmethod
    def _input_path_is_a_json_path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_json_path(path)
        return path

    @model_validator(mode="after")
    def _one_input_form(self) -> IntegrationTarget:
        given = [name for name, value in self._input_forms() if value is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} are exclusive: a target receives one of them")
        return self

    def _input_forms(self) -> list[tuple[str, object]]:
        return [("input", self.input), ("inputPath", self.input_path), ("inputTransformer", self.input_transformer)]

    @field_validator("signing_secret")
    @classmethod
    def _signing_secret_is_whsec(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is None:
            return None
        text = secret.get_secret_value()
        if secret_refs.is_reference(text):
            return secret
        if (problem := secret_refs.reference_syntax_error(text)) is not None:
            raise ValueError(problem)
        validate_signing_secret(text)
        return secret

    @field_serializer("signing_secret")
    def _serialize_signing_secret(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        return _dump_secret(secret, info)


MAX_GRACE_PERIOD_S = 7 * 86_400
DEFAULT_GRACE_PERIOD_S = 86_400


class SigningSecretRotation(WireModel):
    """``POST /targets/{id}/rotate-secret``: the new secret (generated when absent) and the old one's grace."""

    signing_secret: SecretStr | None = None
    grace_period_seconds: int = Field(default=DEFAULT_GRACE_PERIOD_S, ge=0, le=MAX_GRACE_PERIOD_S, strict=True)

    @field_validator("signing_secret")
    @classmethod
    def _signing_secret_is_whsec(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            validate_signing_secret(secret.get_secret_value())  # a ${env:...} reference is resolved by the client
        return secret

    @field_serializer("signing_secret")
    def _serialize_signing_secret(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        return _dump_secret(secret, info)


class TargetPage(WireModel):
    """One page of ``GET /targets``."""

    items: list[IntegrationTarget]
    next_cursor: str | None = None


class TestOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class TargetTestResult(WireModel):
    """What ``POST /targets/{id}/test`` found: 200 when passed, 502/504 when failed."""

    __test__ = False  # not a pytest test class, despite the name

    result: TestOutcome
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    test_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.result == TestOutcome.PASSED


class RoutesTable(WireModel):
    """``GET /api/v2/events/routes``: every target with its secrets, for routers only."""

    items: list[IntegrationTarget]
    generated_at: datetime | None = None


class ErrorBody(WireModel):
    """The error body every API error carries."""

    error: str
    message: str
    errors: list[dict[str, str]] = Field(default_factory=list)


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            segment = to_camel(part) if "_" in part else part
            path += f".{segment}" if path else segment
    return path


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as wire-form field paths and messages, never echoing input (secrets)."""
    errors: list[FieldError] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        path = _loc_to_path(tuple(error["loc"]))
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"
        message = error["msg"]
        for noise in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(noise)
        if error["type"] == "extra_forbidden":
            message = "is not a known field"
        elif error["type"] == "missing":
            message = "is required"
        errors.append(FieldError(path, message))
    return errors
