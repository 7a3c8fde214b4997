"""The token endpoint (RFC 6749 grants and errors) and bearer-token checks on the API routes."""

from __future__ import annotations

import base64

import pytest

from cxone_eventbridge.sandbox.config import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    SandboxClient,
)

TARGETS = "/api/v2/integrations/targets"
TOKEN = "/oauth/token"


async def test_client_credentials_with_basic_auth(api) -> None:
    """HTTP Basic client credentials get a bearer token with every scope and an expiry."""
    response = await api.http.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == {
        "integration:target:read",
        "integration:target:write",
        "integration:target:test",
        "event:route:read",
    }
    assert response.headers["Cache-Control"] == "no-store"


async def test_client_credentials_in_the_form(api) -> None:
    """client_id and client_secret in the form body work as well as Basic."""
    data = {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}
    assert (await api.http.post(TOKEN, data=data)).status_code == 200


async def test_password_grant_with_access_key(api) -> None:
    """The password grant takes an access key (username/password) plus client authentication."""
    data = {"grant_type": "password", "username": DEMO_ACCESS_KEY_ID, "password": DEMO_ACCESS_KEY_SECRET}
    response = await api.http.post(TOKEN, data=data, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert response.status_code == 200
    token = response.json()["access_token"]
    listed = await api.http.get(TARGETS, headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200


async def test_password_grant_with_wrong_access_key_is_invalid_grant(api) -> None:
    """A wrong access key secret answers 400 invalid_grant."""
    data = {"grant_type": "password", "username": DEMO_ACCESS_KEY_ID, "password": "nope"}
    response = await api.http.post(TOKEN, data=data, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, (DEMO_CLIENT_ID, "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("nobody", "x"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ({}, (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), 400, "invalid_request"),
        ({"grant_type": "authorization_code"}, (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), 400, "unsupported_grant_type"),
        ({"grant_type": "password"}, (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), 400, "invalid_request"),
        (
            {"grant_type": "client_credentials", "scope": "admin:all"},
            (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            400,
            "invalid_scope",
        ),
    ],
)
async def test_token_errors_follow_rfc_6749(api, data, auth, status, error) -> None:
    """Each bad token request gets the RFC 6749 error code and status, with a description."""
    response = await api.http.post(TOKEN, data=data, auth=auth)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_repeated_parameter_is_invalid_request(api) -> None:
    """A parameter sent twice is refused, as RFC 6749 section 3.2 requires."""
    response = await api.http.post(
        TOKEN,
        content=b"grant_type=client_credentials&grant_type=password",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_json_token_request_is_invalid_request(api) -> None:
    """The token endpoint speaks form encoding only; JSON gets invalid_request, not a 500."""
    response = await api.http.post(
        TOKEN, json={"grant_type": "client_credentials"}, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_form_encoded_basic_credentials_are_accepted(make_api) -> None:
    """Basic credentials form-encoded first (RFC 6749 2.3.1) authenticate too."""
    api = await make_api(extra_clients=(SandboxClient("client:one", "secret with space"),))
    pair = base64.b64encode(b"client%3Aone:secret+with+space").decode()
    response = await api.http.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {pair}"}
    )
    assert response.status_code == 200


async def test_missing_token_is_401_with_a_challenge(api) -> None:
    """An API call without a token answers 401 with WWW-Authenticate: Bearer."""
    response = await api.http.get(TARGETS)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "token",
    ["garbage", "sbx1.e30.AAAA", "sbx1..", "sbx1." + "A" * 5000, "sbx1.!!!.???"],
)
async def test_forged_tokens_are_401(api, token) -> None:
    """Malformed or forged tokens answer 401 invalid_token, never 500."""
    response = await api.http.get(TARGETS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_tampered_token_is_401(api) -> None:
    """Changing a token's claims (say, the tenant) breaks its signature."""
    prefix, payload, signature = (await api.token()).split(".")
    claims = base64.urlsafe_b64decode(payload + "==").replace(b"cxeb-sandbox-client", b"someone-else-client")
    forged = ".".join([prefix, base64.urlsafe_b64encode(claims).rstrip(b"=").decode(), signature])
    response = await api.http.get(TARGETS, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_tokens_expire(make_api) -> None:
    """A token is accepted until token_ttl_s passes on the sandbox's clock, then answers 401 'expired'."""
    api = await make_api(token_ttl_s=60)
    headers = await api.headers()
    api.clock.advance(59)
    assert (await api.http.get(TARGETS, headers=headers)).status_code == 200
    api.clock.advance(1)
    response = await api.http.get(TARGETS, headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


async def test_missing_scope_is_403_naming_it(api) -> None:
    """A read-only token may list but not create; the 403 names the missing scope."""
    headers = await api.headers(scope="integration:target:read")
    assert (await api.http.get(TARGETS, headers=headers)).status_code == 200
    response = await api.http.post(TARGETS, json=api.body(), headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert "integration:target:write" in response.json()["message"]
    assert 'scope="integration:target:write"' in response.headers["WWW-Authenticate"]


async def test_client_limited_scopes_cannot_be_exceeded(make_api) -> None:
    """A client allowed only read scopes gets invalid_scope when asking for more."""
    reader = SandboxClient("reader", "reader-secret", scopes=frozenset({"integration:target:read"}))
    api = await make_api(extra_clients=(reader,))
    response = await api.http.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "integration:target:write"},
        auth=("reader", "reader-secret"),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert (await api.token("reader", "reader-secret")) != ""


async def test_discovery_documents(api) -> None:
    """The OpenID configuration names the token endpoint; the CXone configuration names the API base."""
    openid = (await api.http.get("/.well-known/openid-configuration")).json()
    assert openid["token_endpoint"] == "http://sandbox.test/oauth/token"
    tenant = await api.http.get("/.well-known/cxone-configuration", params={"tenantId": "t1"})
    assert tenant.json()["api_endpoint"] == "http://sandbox.test"
    assert (await api.http.get("/.well-known/cxone-configuration")).status_code == 422
