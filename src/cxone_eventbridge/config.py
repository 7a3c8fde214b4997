"""Settings, read from the environment once at the edge (the CLI) and passed down explicitly.

``CXONE_*`` configures the control-plane client; ``CXEB_*`` configures the router and its commands.
No other module reads the environment.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SCOPES = "integration:target:read integration:target:write integration:target:test event:route:read"
DEFAULT_SANDBOX_PORT = 8780
DEFAULT_RECEIVER_PORT = 8743
DEFAULT_ROUTER_PORT = 8790


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

    @model_validator(mode="after")
    def _strip_trailing_slash(self) -> Settings:
        if self.base_url:
            self.base_url = self.base_url.rstrip("/")
        return self

    @property
    def resolved_token_url(self) -> str | None:
        """``CXONE_TOKEN_URL``, defaulting to ``{CXONE_BASE_URL}/oauth/token``."""
        if self.token_url:
            return self.token_url
        return f"{self.base_url}/oauth/token" if self.base_url else None


class RouterSettings(BaseSettings):
    """The router's and its commands' settings (``CXEB_*``)."""

    model_config = SettingsConfigDict(env_prefix="CXEB_", env_nested_delimiter="__", extra="ignore")

    router_url: str = f"http://127.0.0.1:{DEFAULT_ROUTER_PORT}"
    ingest_key: SecretStr | None = None
