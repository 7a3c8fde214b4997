"""Discovery of the token endpoint and API base, as real tenants serve them (scripted: the wire's shape)."""

from __future__ import annotations

import httpx
import pytest

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.exceptions import APIError, ConfigurationError

from .conftest import make_settings, target_json

ISSUER = "https://cxone.issuer.test"


def _issuer_handler(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "token_endpoint": f"{ISSUER}/auth/token"})
        if path == "/.well-known/cxone-configuration":
            assert request.url.params["tenantId"] == "tenant-42"
            return httpx.Response(200, json={"area": "na1", "api_endpoint": "https://api-na1.cxone.test"})
        if request.url.host == "cxone.issuer.test" and path == "/auth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        if request.url.host == "api-na1.cxone.test":
            return httpx.Response(200, json=target_json())
        return httpx.Response(404)

    return httpx.MockTransport(handler)


async def test_discovery_finds_the_token_endpoint_and_api_base() -> None:
    """With only the discovery URL and tenant id set, both endpoints are discovered before the first call."""
    seen: list[httpx.Request] = []
    settings = make_settings(base_url=None, discovery_url=ISSUER, tenant_id="tenant-42")
    async with CXoneClient.from_settings(settings, transport=_issuer_handler(seen)) as client:
        assert client.base_url == "https://api-na1.cxone.test"
        assert client.token_url == f"{ISSUER}/auth/token"
        await client.targets.get("tgt_1")
    assert [str(r.url) for r in seen][-2:] == [
        f"{ISSUER}/auth/token",
        "https://api-na1.cxone.test/api/v2/integrations/targets/tgt_1",
    ]
    assert "authorization" not in seen[0].headers  # discovery is unauthenticated


async def test_explicit_urls_win_over_discovery() -> None:
    """An explicit base URL is kept; only the token endpoint is discovered."""
    seen: list[httpx.Request] = []
    settings = make_settings(base_url="https://api-na1.cxone.test", discovery_url=ISSUER)
    async with CXoneClient.from_settings(settings, transport=_issuer_handler(seen)) as client:
        assert client.base_url == "https://api-na1.cxone.test"
        assert client.token_url == f"{ISSUER}/auth/token"
    assert [r.url.path for r in seen] == ["/.well-known/openid-configuration"]


async def test_discovering_the_base_needs_a_tenant() -> None:
    """Discovery of the API base without CXONE_TENANT_ID is a configuration error naming it."""
    settings = make_settings(base_url=None, discovery_url=ISSUER, token_url=f"{ISSUER}/auth/token")
    with pytest.raises(ConfigurationError, match="CXONE_TENANT_ID"):
        async with CXoneClient.from_settings(settings, transport=_issuer_handler([])):
            pass


async def test_a_useless_discovery_document_is_an_api_error() -> None:
    """A discovery answer without ``token_endpoint`` is reported, not guessed around."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"issuer": ISSUER}))
    settings = make_settings(base_url="https://api.cxone.test", discovery_url=ISSUER)
    with pytest.raises(APIError, match="token_endpoint"):
        async with CXoneClient.from_settings(settings, transport=transport):
            pass
