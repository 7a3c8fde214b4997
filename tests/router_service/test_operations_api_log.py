"""Replays, purges and re-enabling a target through the API are single structured log lines."""

from __future__ import annotations

import logging

import pytest

from .conftest import StackFactory

pytestmark = pytest.mark.e2e


async def test_replay_purge_and_enable_are_logged_with_their_counts(
    router_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Each action is one line with operation, target and count (no event content, no key)."""
    caplog.set_level(logging.INFO, logger="cxone_eventbridge")
    stack = await router_stack(receiver_status=400)
    status, body, _ = await stack.call("POST", "/v1/events", json=[{"id": "e1"}, {"id": "e2"}])
    assert status == 202, body
    await stack.outcomes.wait(dead=2)
    _, letters, _ = await stack.call("GET", "/v1/dead-letters")
    first = letters["items"][0]["deliveryId"]
    await stack.call("POST", "/v1/dead-letters/replay", json={"deliveryIds": [first]})
    await stack.outcomes.wait(dead=3)
    await stack.call("POST", "/v1/dead-letters/purge", json={"target": "crm"})
    await stack.call("POST", "/v1/targets/crm/enable")
    lines = [
        r
        for r in caplog.records
        if r.name == "cxone_eventbridge.operations" and getattr(r, "operation", None) != "migration"
    ]
    actions = [(getattr(r, "operation", None), getattr(r, "count", None), getattr(r, "target", None)) for r in lines]
    assert actions == [("replay", 1, None), ("purge", 2, "crm"), ("target_enabled", None, "crm")]
    assert [r.getMessage() for r in lines] == [
        "dead letters: replayed 1 (1 named)",
        "dead letters: purged 2 (all of crm)",
        "target crm enabled",
    ]
