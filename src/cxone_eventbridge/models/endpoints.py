"""What an endpoint URL must be: a target's endpoint and an OAuth token URL alike."""

from __future__ import annotations

from urllib.parse import urlsplit

from cxone_eventbridge.ssrf import canonical_host

MAX_ENDPOINT_LENGTH = 2048


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` if it is an https URL in the one spelling every HTTP stack reads alike; else ValueError."""
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
