"""Signing secrets over time: the secret a rotation replaced (still valid for its grace) and the rotation."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr, SerializationInfo, field_serializer, field_validator

from cxone_eventbridge.models.base import WireModel, dump_secret
from cxone_eventbridge.signing import validate_signing_secret

MAX_GRACE_PERIOD_S = 7 * 86_400
DEFAULT_GRACE_PERIOD_S = 86_400


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
        return dump_secret(secret, info)

    def active_at(self, now: float) -> bool:
        """True while the grace period lasts (``now`` in seconds since the epoch)."""
        return now < self.expires_at.timestamp()


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
        return dump_secret(secret, info)
