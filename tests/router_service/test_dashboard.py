"""GET /ui and its data route on a whole router: static page without data, data behind the ingest key."""

from __future__ import annotations

import pytest

from .conftest import StackFactory

pytestmark = pytest.mark.e2e


async def test_the_page_and_its_assets_are_served_by_the_router_with_a_strict_policy(
    router_stack: StackFactory,
) -> None:
    """/ui and every asset it loads come from the router (no CDN); the page may only talk to its own origin."""
    stack = await router_stack()
    status, page, headers = await stack.call("GET", "/ui", key=None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert "http://" not in page
    assert "https://" not in page
    for asset, kind in [("app.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
        assert f"/ui/assets/{asset}" in page
        status, body, headers = await stack.call("GET", f"/ui/assets/{asset}", key=None)
        assert status == 200, asset
        assert headers["Content-Type"] == kind
        assert "https://" not in body
        assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
    status, _, _ = await stack.call("GET", "/ui/assets/secrets.txt", key=None)
    assert status == 404


async def test_the_overview_needs_the_key_and_shows_traffic_targets_and_dead_letters(
    router_stack: StackFactory,
) -> None:
    """Without the key 401; with it, timeline columns, queue depths, per-target rows and dead letters."""
    stack = await router_stack(receiver_status=400, targets=["crm", "billing"])
    status, _, _ = await stack.call("GET", "/v1/ui/overview", key=None)
    assert status == 401
    status, body, _ = await stack.call("POST", "/v1/events", json={"id": "e1"})
    assert status == 202, body
    await stack.outcomes.wait(dead=2)
    status, overview, _ = await stack.call("GET", "/v1/ui/overview")
    assert status == 200
    assert sum(overview["timeline"]["accepted"]) == 1
    assert sum(overview["timeline"]["dead"]) == 2
    assert overview["timeline"]["queueDead"][-1] == 2
    assert overview["queue"]["dead"] == 2
    rows = {row["target"]: row for row in overview["targets"]}
    assert set(rows) == {"crm", "billing"}
    assert (rows["crm"]["failed"], rows["crm"]["pending"], rows["crm"]["lastStatus"]) == (1, 0, 400)
    assert {letter["eventId"] for letter in overview["deadLetters"]} == {"e1"}
    assert {letter["target"] for letter in overview["deadLetters"]} == {"crm", "billing"}
