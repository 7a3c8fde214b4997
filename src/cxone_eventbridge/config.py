"""Settings, read from the environment once at the edge (the CLI) and passed down explicitly.

``CXONE_*`` configures the control-plane client; ``CXEB_*`` configures the router and its commands.
No other module reads the environment. A profile of the user config file (``profiles.py``) fills in what
the environment does not set: flags > environment variables > profile > defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cxone_eventbridge.defaults import DEFAULT_ROUTER_URL
from cxone_eventbridge.exceptions import ConfigurationError

if TYPE_CHECKING:
    from cxone_eventbridge.profiles import Profile

DEFAULT_SCOPES = "integration:target:read integration:target:write integration:target:test event:route:read"
API_PREFIX = "/api/v2"


def url_problem(value: str) -> str | None:
    """What keeps ``value`` from being an http(s) URL with a host, or None when it is one."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return f"{value!r} has no scheme; write http://{value} or https://{value}"
    if scheme.lower() not in {"http", "https"}:
        return f"{value!r} must start with http:// or https://, not {scheme}://"
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if not host or host.startswith(":"):
        return f"{value!r} has no host"
    port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return f"{value!r} has an invalid port {port!r}"
    return None


def url_without_password(url: str) -> str:
    """``url`` fit to print: a password in its user part (``user:***@host``) or its query (``password=***``)."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() == "password" for name, _ in pairs):
            query = "&".join(f"{name}={'***' if name.lower() == 'password' else value}" for name, value in pairs)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # as written: urlunsplit would drop the empty authority of sqlite:///PATH
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class GrantType(StrEnum):
    CLIENT_CREDENTIALS = "client_credentials"
    PASSWORD = "password"  # noqa: S105 -- an OAuth2 grant type name, not a password


class Settings(BaseSettings):
    """The control-plane client's settings (``CXONE_*``)."""

    model_config = SettingsConfigDict(env_prefix="CXONE_", env_nested_delimiter="__", extra="ignore")

    base_url: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    grant_type: GrantType = GrantType.CLIENT_CREDENTIALS
    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    scopes: str = DEFAULT_SCOPES
    rate_limit_per_minute: float = Field(default=100.0, gt=0)
    ca_bundle: Path | None = None
    discovery_url: str | None = None
    tenant_id: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, le=10)
    max_retry_wait_s: float = Field(default=60.0, ge=0)

    @field_validator("base_url", "token_url", "discovery_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An http(s) URL with a host; a base URL without the ``/api/v2`` that every route already starts with."""
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        problem = url_problem(value)
        if problem is None and info.field_name == "base_url" and value.lower().endswith(API_PREFIX):
            problem = (
                f"{value!r} ends in {API_PREFIX}, which every route adds itself; use {value[: -len(API_PREFIX)]!r}"
            )
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def resolved_token_url(self) -> str | None:
        """``CXONE_TOKEN_URL``, defaulting to ``{CXONE_BASE_URL}/oauth/token``."""
        if self.token_url:
            return self.token_url
        return f"{self.base_url}/oauth/token" if self.base_url else None


class RouterSettings(BaseSettings):
    """The router's and its commands' settings (``CXEB_*``)."""

    model_config = SettingsConfigDict(env_prefix="CXEB_", env_nested_delimiter="__", extra="ignore")

    router_url: str = DEFAULT_ROUTER_URL
    ingest_key: SecretStr | None = None

    @field_validator("router_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if (problem := url_problem(value)) is not None:
            raise ValueError(problem)
        return value


SettingsT = TypeVar("SettingsT", Settings, RouterSettings)


def _set_in(environ: Mapping[str, str], name: str) -> bool:
    """Whether ``name`` is set, as pydantic-settings reads it (any case); an empty value counts as unset."""
    return any(key.upper() == name and value != "" for key, value in environ.items())


def read_settings(kind: type[SettingsT], *, profile: Profile | None = None) -> SettingsT:
    """``kind`` from the environment, then ``profile``; a ConfigurationError naming every invalid setting.

    A variable names itself in the message (``CXONE_BASE_URL: ...``), a profile's key its file and line.
    """
    prefix = kind.model_config.get("env_prefix", "")
    environ = os.environ
    from_profile: dict[str, object] = {}
    if profile is not None:
        from_profile = {
            name: value
            for name, value in profile.values_for(kind, environ).items()
            if not _set_in(environ, f"{prefix}{name}".upper())
        }
    try:
        return kind(**from_profile)  # type: ignore[arg-type]  # checked by the model
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = str(error["loc"][0]) if error["loc"] else ""
            if profile is not None and field in from_profile:
                name = profile.field_place(field)
            else:
                name = prefix + "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigurationError("invalid settings:\n  - " + "\n  - ".join(problems)) from None
