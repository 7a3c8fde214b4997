"""Secret fingerprints: how a secret is compared without ever being read back.

The fingerprint is a short SHA-256 prefix salted with the target id, so the same secret on two targets
has two fingerprints and a fingerprint reveals nothing useful about the secret.
"""

from __future__ import annotations

import hashlib

FINGERPRINT_HEX_CHARS = 16


def secret_fingerprint(target_id: str, secret: str) -> str:
    """The fingerprint of a secret held by a target: ``sha256:`` and 16 hex characters."""
    digest = hashlib.sha256(f"{target_id}\x00{secret}".encode()).hexdigest()
    return f"sha256:{digest[:FINGERPRINT_HEX_CHARS]}"
