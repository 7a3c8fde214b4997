"""The shared sandbox fixture serves the token endpoint and the targets routes over loopback."""

from __future__ import annotations

import httpx


async def test_fixture_serves_token_and_crud(sandbox) -> None:
    """A token from the fixture's credentials creates, reads and lists a target in the test's own tenant."""
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        token = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(sandbox.client_id, sandbox.client_secret)
        )
        assert token.status_code == 200
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        created = await client.post(
            "/api/v2/integrations/targets", json={"name": "a", "endpoint": "https://example.com/h"}, headers=headers
        )
        assert created.status_code == 201
        listed = await client.get("/api/v2/integrations/targets", headers=headers)
    assert [item["name"] for item in listed.json()["items"]] == ["a"]
    assert sandbox.settings().base_url == sandbox.base_url
