"""Targets of type oauth_client_credentials in the sandbox: write-only client secret, routes table, real test call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.fingerprints import secret_fingerprint

from .conftest import ROUTES, TARGETS, Api

CLIENT_ID = "sandbox-test-client"
CLIENT_SECRET = "oauth-client-secret-never-shown"


def _oauth(token_url: str, secret: str | None = CLIENT_SECRET, **extra: Any) -> dict[str, Any]:
    oauth: dict[str, Any] = {"tokenUrl": token_url, "clientId": CLIENT_ID, "scopes": ["events:write"], **extra}
    if secret is not None:
        oauth["clientSecret"] = secret
    return {"type": "oauth_client_credentials", "oauth": oauth}


@pytest.fixture
async def local_api(make_api: Any, receiver_certs_dir: Path) -> Api:
    """An in-process sandbox on the real clock that trusts the receiver's CA and may reach loopback."""
    api: Api = await make_api(allow_private=("127.0.0.0/8",), ca_bundle=receiver_certs_dir / "ca.pem", clock=time.time)
    return api


async def test_the_client_secret_is_write_only_and_served_to_routers(api: Api) -> None:
    """Responses show oauth.clientSecret null and a valueFingerprint; the routes table has the secret."""
    created = await api.create(api.body(authentication=_oauth("https://auth.example.com/oauth/token")))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["authentication"]["oauth"]["clientSecret"] is None
    assert body["authentication"]["oauth"]["clientId"] == CLIENT_ID
    assert body["authentication"]["valueFingerprint"] == secret_fingerprint(body["id"], CLIENT_SECRET)
    assert CLIENT_SECRET not in created.text
    table = (await api.http.get(ROUTES, headers=await api.headers())).json()
    (route,) = table["items"]
    assert route["authentication"]["oauth"]["clientSecret"] == CLIENT_SECRET

    # The read form sent back keeps the secret; a changed scope is stored.
    read_form = body["authentication"]
    read_form["oauth"]["scopes"] = ["events:write", "events:read"]
    replaced = await api.http.put(
        f"{TARGETS}/{body['id']}", json=api.body(authentication=read_form), headers=await api.headers()
    )
    assert replaced.status_code == 200, replaced.text
    (route,) = (await api.http.get(ROUTES, headers=await api.headers())).json()["items"]
    assert route["authentication"]["oauth"]["clientSecret"] == CLIENT_SECRET
    assert route["authentication"]["oauth"]["scopes"] == ["events:write", "events:read"]


async def test_invalid_oauth_settings_are_422_naming_each_field(api: Api) -> None:
    """Missing secret, http token URL, reserved form field and header: one 422 with wire paths, no echo."""
    created = await api.create(
        api.body(
            authentication=_oauth(
                "http://auth.example.com/token",
                tokenFormFields={"client_secret": "leak-me"},
                tokenHeaders={"Authorization": "leak-me"},
            )
        )
    )
    assert created.status_code == 422
    fields = sorted(e["field"] for e in created.json()["errors"])
    assert fields == [
        "authentication.oauth.tokenFormFields",
        "authentication.oauth.tokenHeaders",
        "authentication.oauth.tokenUrl",
    ]
    assert "leak-me" not in created.text
    missing = await api.create(api.body(authentication=_oauth("https://auth.example.com/token", secret=None)))
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["authentication.oauth"]


async def test_the_test_call_performs_the_real_token_exchange(local_api: Api, https_receiver: Any) -> None:
    """The test event carries a token from the receiver's token endpoint; a wrong secret fails the test, unleaked."""
    receiver = await https_receiver(oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET)
    created = await local_api.create(
        local_api.body(endpoint=f"{receiver.url}/hook", authentication=_oauth(receiver.token_url))
    )
    assert created.status_code == 201, created.text
    headers = await local_api.headers()
    passed = await local_api.http.post(f"{TARGETS}/{created.json()['id']}/test", headers=headers)
    assert passed.status_code == 200, passed.text
    assert receiver.token_requests == 1
    (record,) = receiver.records()
    assert record["headers"]["Authorization"].startswith("Bearer ")

    wrong = await local_api.create(
        local_api.body(
            name="wrong", endpoint=f"{receiver.url}/hook", authentication=_oauth(receiver.token_url, "nope-secret")
        )
    )
    failed = await local_api.http.post(f"{TARGETS}/{wrong.json()['id']}/test", headers=headers)
    assert failed.status_code == 502
    assert failed.json()["error"] == "token endpoint answered HTTP 401"
    assert "nope-secret" not in failed.text
    assert receiver.request_count == 1  # nothing was sent to the endpoint without a token
