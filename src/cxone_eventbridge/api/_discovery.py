"""Optional discovery of a tenant's endpoints, as real CXone tenants do it.

Given ``CXONE_DISCOVERY_URL`` (the issuer, e.g. ``https://cxone.niceincontact.com``) the token endpoint comes
from the OpenID configuration, and, with ``CXONE_TENANT_ID``, the API base comes from
``/.well-known/cxone-configuration?tenantId=...``. Explicit ``CXONE_TOKEN_URL`` / ``CXONE_BASE_URL`` win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from cxone_eventbridge.api._http import RequestSender
from cxone_eventbridge.exceptions import APIError, ConfigurationError

OPENID_PATH = "/.well-known/openid-configuration"
CXONE_CONFIGURATION_PATH = "/.well-known/cxone-configuration"
# The API base's key in the tenant configuration; CXone answers ``api_endpoint``, camelCase is accepted too.
_API_BASE_KEYS = ("api_endpoint", "apiEndpoint", "api_base_url", "apiBaseUrl")


@dataclass(frozen=True)
class DiscoveredEndpoints:
    token_url: str | None
    base_url: str | None


def _issuer(discovery_url: str) -> str:
    url = discovery_url.rstrip("/")
    return url.removesuffix(OPENID_PATH)


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise APIError(f"{what} at {response.request.url} is not JSON") from exc
    if not isinstance(data, dict):
        raise APIError(f"{what} at {response.request.url} is not a JSON object")
    return data


def _https_url(value: Any, what: str, key: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise APIError(f"{what} has no usable {key!r}")
    return value.rstrip("/")


async def discover(
    sender: RequestSender,
    discovery_url: str,
    *,
    tenant_id: str | None,
    need_token_url: bool,
    need_base_url: bool,
) -> DiscoveredEndpoints:
    """Ask the issuer for what the settings left out (unauthenticated requests)."""
    issuer = _issuer(discovery_url)
    token_url: str | None = None
    base_url: str | None = None
    if need_token_url:
        what = "the OpenID configuration"
        response = await sender.request("GET", issuer + OPENID_PATH)
        token_url = _https_url(_json_object(response, what).get("token_endpoint"), what, "token_endpoint")
    if need_base_url:
        if not tenant_id:
            raise ConfigurationError("discovering the API base needs CXONE_TENANT_ID (or set CXONE_BASE_URL)")
        what = "the tenant's CXone configuration"
        response = await sender.request("GET", issuer + CXONE_CONFIGURATION_PATH, params={"tenantId": tenant_id})
        data = _json_object(response, what)
        key = next((k for k in _API_BASE_KEYS if k in data), _API_BASE_KEYS[0])
        base_url = _https_url(data.get(key), what, key)
    return DiscoveredEndpoints(token_url=token_url, base_url=base_url)
