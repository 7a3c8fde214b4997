"""With a database file the sandbox's state, tokens included, survives a restart."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from cxone_eventbridge.sandbox.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from cxone_eventbridge.sandbox.store import TargetStore

TARGETS = "/api/v2/integrations/targets"


async def test_state_survives_a_restart_with_db(sandbox_factory, tmp_path: Path) -> None:
    """A target created before a restart is there after it, the old token still works, names stay unique."""
    db = tmp_path / "sandbox.db"
    first = sandbox_factory(db_path=db)
    async with httpx.AsyncClient(base_url=first.base_url) as client:
        token = (
            await client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = {
            "name": "kept",
            "endpoint": "https://hooks.example.com/k",
            "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        }
        created = (await client.post(TARGETS, json=body, headers={**headers, "Idempotency-Key": "k1"})).json()
    first.app.state.sandbox.close()  # the process "exits"

    second = sandbox_factory(db_path=db)
    async with httpx.AsyncClient(base_url=second.base_url, headers=headers) as client:
        listed = (await client.get(TARGETS)).json()["items"]
        assert [item["id"] for item in listed] == [created["id"]]
        assert (await client.post(TARGETS, json=body)).status_code == 409
        replay = await client.post(TARGETS, json=body, headers={"Idempotency-Key": "k1"})
        assert replay.status_code == 201
        assert replay.json()["id"] == created["id"]
        routes = (await client.get("/api/v2/events/routes")).json()["items"]
        assert routes[0]["signingSecret"] == body["signingSecret"]


async def test_in_memory_state_does_not_survive(sandbox_factory) -> None:
    """Without a database file each server starts empty, and old tokens are refused (new signing key)."""
    first = sandbox_factory()
    async with httpx.AsyncClient(base_url=first.base_url) as client:
        token = (
            await client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
            )
        ).json()["access_token"]
    second = sandbox_factory()
    async with httpx.AsyncClient(base_url=second.base_url) as client:
        response = await client.get(TARGETS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_the_database_holding_secrets_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The sandbox's database file and its WAL are created 0600 whatever the umask; an existing 0644 file is tightened."""
    db = tmp_path / "sandbox.db"
    previous = os.umask(0o022)
    try:
        store = TargetStore(db)
        store.meta_setdefault("k", "v")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        store.close()
        assert modes["sandbox.db"] == 0o600
        assert modes.get("sandbox.db-wal", 0o600) == 0o600
        other = tmp_path / "old.db"
        other.touch(mode=0o644)
        TargetStore(other).close()
        assert stat.S_IMODE(other.stat().st_mode) == 0o600
    finally:
        os.umask(previous)
