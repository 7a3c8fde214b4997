"""The OAuth2 flow's wire form and cache, through a scripted token endpoint (the sandbox tests cover the rest)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from cxone_eventbridge.api import TARGETS_PATH, ClientCredentials, CXoneClient, OAuth2Auth
from cxone_eventbridge.config import DEFAULT_SCOPES, GrantType
from cxone_eventbridge.exceptions import AuthenticationError, ConfigurationError, InternalServerError

from .conftest import (
    CLIENT_SECRET,
    TOKEN_URL,
    RecordingSleep,
    ScriptedControlPlane,
    basic_credentials,
    form_of,
    make_settings,
    target_json,
)

ClientFactory = Callable[..., CXoneClient]
GET_ONE = f"GET {TARGETS_PATH}/tgt_1"


async def test_client_credentials_are_sent_with_http_basic(
    make_client: ClientFactory, control_plane: ScriptedControlPlane
) -> None:
    """The token request carries id:secret in HTTP Basic, the grant and the default scopes; the API gets the token."""
    control_plane.script(GET_ONE, httpx.Response(200, json=target_json()))
    async with make_client() as client:
        await client.targets.get("tgt_1")
    (token_request,) = control_plane.token_requests
    assert basic_credentials(token_request) == f"client-id:{CLIENT_SECRET}"
    assert form_of(token_request) == {"grant_type": "client_credentials", "scope": DEFAULT_SCOPES}
    assert control_plane.requests[0].headers["authorization"] == "Bearer token-1"


async def test_password_grant_sends_the_access_key(
    make_client: ClientFactory, control_plane: ScriptedControlPlane
) -> None:
    """``CXONE_GRANT_TYPE=password`` sends the access key id/secret as username/password, client in Basic."""
    control_plane.script(GET_ONE, httpx.Response(200, json=target_json()))
    client = make_client(
        grant_type=GrantType.PASSWORD,
        access_key_id="AKID",
        access_key_secret=SecretStr("ak-secret"),
        scopes="integration:target:read",
    )
    async with client:
        await client.targets.get("tgt_1")
    (token_request,) = control_plane.token_requests
    assert form_of(token_request) == {
        "grant_type": "password",
        "username": "AKID",
        "password": "ak-secret",
        "scope": "integration:target:read",
    }
    assert basic_credentials(token_request) == f"client-id:{CLIENT_SECRET}"


def test_missing_credentials_name_the_setting() -> None:
    """A grant without its credentials is a ConfigurationError naming the environment variables."""
    with pytest.raises(ConfigurationError, match="CXONE_CLIENT_SECRET"):
        CXoneClient.from_settings(make_settings(client_secret=None))
    with pytest.raises(ConfigurationError, match="CXONE_ACCESS_KEY_ID and CXONE_ACCESS_KEY_SECRET"):
        CXoneClient.from_settings(make_settings(grant_type=GrantType.PASSWORD))
    with pytest.raises(ConfigurationError, match="CXONE_BASE_URL is not set"):
        CXoneClient.from_settings(make_settings(base_url=None))


async def test_token_is_cached_then_refreshed_before_expiry(control_plane: ScriptedControlPlane) -> None:
    """One token serves many calls; once the clock nears ``expires_in`` the next call fetches a new one."""
    now = [1000.0]
    control_plane.script(GET_ONE, httpx.Response(200, json=target_json()))
    client = CXoneClient.from_settings(
        make_settings(), transport=httpx.MockTransport(control_plane.handler), clock=lambda: now[0]
    )
    async with client:
        for _ in range(5):
            await client.targets.get("tgt_1")
        assert len(control_plane.token_requests) == 1
        now[0] += 3600 - 61  # still outside the 60 s refresh margin
        await client.targets.get("tgt_1")
        assert len(control_plane.token_requests) == 1
        now[0] += 2  # inside the margin: refresh before the server would refuse it
        await client.targets.get("tgt_1")
    assert len(control_plane.token_requests) == 2
    assert control_plane.requests[-1].headers["authorization"] == "Bearer token-2"


async def test_refused_credentials_raise_authentication_error(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """An RFC 6749 ``invalid_client`` answer is an AuthenticationError with the server's words, not retried."""
    control_plane.token_replies = [
        httpx.Response(401, json={"error": "invalid_client", "error_description": "unknown client"})
    ]
    async with make_client() as client:
        with pytest.raises(AuthenticationError, match="invalid_client: unknown client") as caught:
            await client.targets.get("tgt_1")
    assert CLIENT_SECRET not in str(caught.value)
    assert len(control_plane.token_requests) == 1
    assert recording_sleep.waits == []
    assert control_plane.requests == []


async def test_token_endpoint_outage_is_retried(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A 503 from the token endpoint is retried like any 5xx, and the call then succeeds."""
    control_plane.token_replies = [
        httpx.Response(503, json={"error": "temporarily_unavailable"}),
        httpx.Response(200, json={"access_token": "fresh", "token_type": "bearer", "expires_in": 60}),
    ]
    control_plane.script(GET_ONE, httpx.Response(200, json=target_json()))
    async with make_client() as client:
        await client.targets.get("tgt_1")
    assert len(control_plane.token_requests) == 2
    assert len(recording_sleep.waits) == 1
    assert control_plane.requests[0].headers["authorization"] == "Bearer fresh"


async def test_malformed_token_answers_are_authentication_errors(
    make_client: ClientFactory, control_plane: ScriptedControlPlane
) -> None:
    """A 200 without an access_token, or with a non-bearer type, is refused clearly."""
    control_plane.token_replies = [httpx.Response(200, json={"token_type": "bearer"})]
    async with make_client() as client:
        with pytest.raises(AuthenticationError, match="without an access_token"):
            await client.targets.get("tgt_1")
    control_plane.token_replies = [httpx.Response(200, json={"access_token": "x", "token_type": "mac"})]
    async with make_client() as client:
        with pytest.raises(AuthenticationError, match="unsupported token_type"):
            await client.targets.get("tgt_1")
    control_plane.token_replies = [httpx.Response(500, text="oops")]
    async with make_client(max_attempts=1) as client:
        with pytest.raises(InternalServerError, match="token request failed with HTTP 500"):
            await client.targets.get("tgt_1")


def test_repr_hides_secrets() -> None:
    """Neither the credentials, the auth flow nor the client show a secret in ``repr``."""
    credentials = ClientCredentials(
        grant_type=GrantType.CLIENT_CREDENTIALS, client_id="client-id", client_secret=SecretStr(CLIENT_SECRET)
    )
    auth = OAuth2Auth(TOKEN_URL, credentials)
    client = CXoneClient.from_settings(make_settings())
    for text in (repr(credentials), repr(auth), repr(client), repr(make_settings())):
        assert CLIENT_SECRET not in text


def test_sync_use_is_refused() -> None:
    """The flow is async-only; a sync httpx.Client says so instead of misbehaving."""
    credentials = ClientCredentials(
        grant_type=GrantType.CLIENT_CREDENTIALS, client_id="client-id", client_secret=SecretStr(CLIENT_SECRET)
    )
    with httpx.Client(auth=OAuth2Auth(TOKEN_URL, credentials)) as sync_client, pytest.raises(RuntimeError):
        sync_client.get("https://cxone.test/x")
