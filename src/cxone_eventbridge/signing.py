"""Standard Webhooks signatures: sign and verify, no I/O, the clock passed in.

``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` with the key being the
base64-decoded part of the secret after ``whsec_``. See https://www.standardwebhooks.com/.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

from cxone_eventbridge.exceptions import SignatureVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the Standard Webhooks prefix, not a secret
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
DEFAULT_TOLERANCE_S = 300


def generate_signing_secret(key_bytes: int = 32) -> str:
    """A fresh ``whsec_`` secret with ``key_bytes`` random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(key_bytes)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r}")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"must be {SECRET_PREFIX!r} followed by base64") from exc


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (for callers that sign many messages with one key)."""
    return _key(secret)


def validate_signing_secret(secret: str) -> None:
    """Raise ValueError (without echoing the secret) unless it is ``whsec_`` + base64 of 24-64 bytes."""
    key = _key(secret)
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"must encode {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes after {SECRET_PREFIX!r}")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str, msg_id: str, timestamp: int, body: bytes, *, also: Sequence[str] = ()
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt.

    ``also`` are further secrets to sign with (a rotated-out secret during its grace period): their
    signatures follow the first one, space-separated, so a receiver holding any of the secrets verifies.
    """
    signature = " ".join(sign(key, msg_id, timestamp, body) for key in (secret, *also))
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise SignatureVerificationError unless one of the ``v1`` signatures is valid and fresh.

    ``headers`` must be looked up case-insensitively by the caller's mapping, or use lower-case keys.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signature_text = lowered.get("webhook-signature")
    if not msg_id or not timestamp_text or not signature_text:
        raise SignatureVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(timestamp_text)
    except ValueError as exc:
        raise SignatureVerificationError("webhook-timestamp is not an integer") from exc
    if abs(now - timestamp) > tolerance_s:
        raise SignatureVerificationError("webhook-timestamp is outside the tolerance window")
    expected = sign(secret, msg_id, timestamp, body).partition(",")[2]
    for candidate in signature_text.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise SignatureVerificationError("no matching v1 signature")
