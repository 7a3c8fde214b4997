"""How deliveries authenticate to an endpoint: bearer, basic, API key or OAuth client credentials."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field, SecretStr, SerializationInfo, ValidationInfo, field_serializer, field_validator

from cxone_eventbridge import secret_refs
from cxone_eventbridge.models.base import WireModel, dump_secret
from cxone_eventbridge.models.endpoints import check_endpoint

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


class AuthType(StrEnum):
    BEARER = "bearer"
    BASIC = "basic"
    API_KEY = "api_key"
    OAUTH_CLIENT_CREDENTIALS = "oauth_client_credentials"
    NONE = "none"


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
        return check_endpoint(url)

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
        return dump_secret(secret, info)


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
        return dump_secret(value, info)

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
