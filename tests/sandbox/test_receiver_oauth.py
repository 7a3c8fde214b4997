"""The receiver as an OAuth 2.0 client-credentials server: token endpoint, bearer check, forced failures."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from cxone_eventbridge.sandbox.receiver import ReceiverConfig

CLIENT_ID = "rcv-client"
CLIENT_SECRET = "rcv-secret:with/odd+chars"


async def _client(receiver: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=receiver.url, verify=ssl.create_default_context(cafile=str(receiver.ca_path)))


async def test_tokens_by_basic_or_form_credentials_guard_every_post(https_receiver: Any) -> None:
    """Basic (form-encoded) or form credentials get a token; a POST needs a live one; errors per RFC 6749."""
    receiver = await https_receiver(oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET, oauth_token_ttl_s=60)
    async with await _client(receiver) as http:
        basic = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "a b"},
            auth=("rcv-client", "rcv-secret%3Awith%2Fodd%2Bchars"),
        )
        assert basic.status_code == 200, basic.text
        answer = basic.json()
        assert answer["token_type"] == "Bearer"
        assert answer["expires_in"] == 60
        assert answer["scope"] == "a b"
        form = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        assert form.status_code == 200
        assert (await http.post("/hook", json={})).status_code == 401
        wrong = await http.post("/hook", json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        good = await http.post("/hook", json={}, headers={"Authorization": f"Bearer {answer['access_token']}"})
        assert good.status_code == 200
        grant = await http.post("/oauth/token", data={"grant_type": "password"}, auth=(CLIENT_ID, CLIENT_SECRET))
        assert grant.json() == {"error": "unsupported_grant_type"}
        bad = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic %%%"}
        )
        assert (bad.status_code, bad.json()) == (401, {"error": "invalid_client"})
        receiver.fail_token_requests(503)
        assert (await http.post("/oauth/token", data={"grant_type": "client_credentials"})).status_code == 503
        receiver.revoke_tokens()
        revoked = await http.post("/hook", json={}, headers={"Authorization": f"Bearer {answer['access_token']}"})
        assert revoked.status_code == 401
    assert receiver.token_requests == 5
    assert receiver.request_count == 1
    assert receiver.token_url.endswith("/oauth/token")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"oauth_client_id": "x"}, "go together"),
        ({"oauth_client_id": "x", "oauth_client_secret": "y", "oauth_token_ttl_s": 0}, "oauth_token_ttl_s"),
    ],
)
def test_oauth_options_are_checked(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    """An id without a secret, or a non-positive token lifetime, is refused naming the option."""
    with pytest.raises(ValueError, match=message):
        ReceiverConfig(certs_dir=tmp_path, **options)
