"""The router's steering routes and target references: name or control-plane id, alike, everywhere."""

from __future__ import annotations

import logging

import pytest

from ..waiting import until
from .conftest import StackFactory, target_for

pytestmark = pytest.mark.e2e


async def test_commands_take_a_name_or_an_id_and_refuse_an_unknown_or_ambiguous_one(router_stack: StackFactory) -> None:
    """An id resolves to its target's name; a name that is also another target's id is refused, and so is
    an unknown reference, each naming what the router knows."""
    stack = await router_stack(targets=["crm"])
    url = stack.receiver.url
    stack.router.set_targets([target_for("crm", url, id="tgt_1"), target_for("billing", url, id="tgt_2")])
    status, body, _ = await stack.call("POST", "/v1/targets/tgt_2/pause")
    assert (status, body) == (200, {"target": "billing", "paused": True, "changed": True})
    status, body, _ = await stack.call("GET", "/v1/status?target=tgt_2")
    assert [(row["target"], row["hold"]) for row in body["targets"]] == [("billing", "paused")]
    status, body, _ = await stack.call("POST", "/v1/targets/nope/resume")
    assert status == 404
    assert body["error"] == "not_found"
    assert (
        body["message"]
        == "the router knows no target named or with id 'nope'; it knows: billing (id tgt_2), crm (id tgt_1)"
    )
    assert body["errors"] == [{"field": "target", "message": "nope"}]
    for path in ("/v1/status?target=nope", "/v1/dead-letters?target=nope", "/v1/deliveries/live?target=nope"):
        status, body, _ = await stack.call("GET", path)
        assert (status, body["error"]) == (404, "not_found"), path

    stack.router.set_targets([target_for("crm", url, id="tgt_1"), target_for("tgt_1", url)])
    status, body, _ = await stack.call("POST", "/v1/targets/tgt_1/pause")
    assert status == 404
    assert "'tgt_1' is ambiguous: the name of one target and the id of target 'crm'" in body["message"]


async def test_dead_letters_are_selected_by_id_and_a_removed_targets_by_name(router_stack: StackFactory) -> None:
    """dlq --target takes an id; a target no longer configured is still named by its dead letters' name."""
    stack = await router_stack(receiver_status=400, targets=["crm"])
    url = stack.receiver.url
    stack.router.set_targets([target_for("crm", url, id="tgt_1")])
    status, _, _ = await stack.call("POST", "/v1/events", json=[{"id": "e1"}])
    assert status == 202
    await stack.outcomes.wait(dead=1)
    status, body, _ = await stack.call("GET", "/v1/dead-letters?target=tgt_1")
    assert [(i["target"], i["eventId"]) for i in body["items"]] == [("crm", "e1")]
    assert body["items"][0]["deadAt"].endswith("Z")  # ISO-8601, not Unix seconds
    await stack.router.remove_target("crm")
    status, body, _ = await stack.call("POST", "/v1/dead-letters/purge", json={"target": "crm"})
    assert (status, body) == (200, {"purged": 1})
    status, body, _ = await stack.call("POST", "/v1/dead-letters/purge", json={"target": "crm"})
    assert (status, body["error"]) == (404, "not_found")


async def test_pause_and_resume_are_audited_and_logged_and_a_gone_target_is_not_paused_over(
    router_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """One audit record and one operations line per change; a 410-disabled target answers 409 naming enable."""
    caplog.set_level(logging.INFO, logger="cxone_eventbridge.operations")
    stack = await router_stack(targets=["crm", "billing"])
    assert (await stack.call("POST", "/v1/targets/crm/pause"))[0] == 200
    assert (await stack.call("POST", "/v1/targets/crm/resume"))[0] == 200
    actions = [(r["action"], r["target"]) for r in stack.audit_records() if r.get("kind") != "delivery"]
    assert actions[-2:] == [("paused", "crm"), ("resumed", "crm")]
    lines = [(getattr(r, "operation", None), r.getMessage()) for r in caplog.records]
    assert ("target_paused", "target crm paused") in lines
    assert ("target_resumed", "target crm resumed") in lines

    await stack.router.queue.disable_target("billing", reason="gone")
    for action in ("pause", "resume"):
        status, body, _ = await stack.call("POST", f"/v1/targets/billing/{action}")
        assert (status, body["error"]) == (409, "target_disabled")
        assert "`cxeb router enable billing`" in body["message"]


async def test_probe_with_nothing_pending_leaves_the_circuit_half_open_and_says_so(router_stack: StackFactory) -> None:
    """A shared circuit open with no work to probe with: 200, no attempt, a message; the next event is the
    probe and closes it. Closed circuits, paused targets and a bad wait are refused by name."""
    stack = await router_stack(targets=["crm", "billing"])
    await stack.router.queue.open_circuit("crm", open_for_s=300)
    status, body, _ = await stack.call("POST", "/v1/targets/crm/probe?wait=5")
    assert status == 200, body
    assert (body["target"], body["pending"], body["attempt"]) == ("crm", 0, None)
    assert body["message"] == (
        "no pending delivery of crm to probe with: its circuit is half-open, so its next delivery is the probe"
    )
    assert (await stack.call("POST", "/v1/events", json=[{"id": "after"}]))[0] == 202
    await stack.outcomes.wait(delivered=2)
    assert await stack.router.queue.circuits() == {}  # the probe succeeded: closed for every router

    status, body, _ = await stack.call("POST", "/v1/targets/billing/probe")
    assert (status, body["error"]) == (409, "circuit_closed")
    await stack.call("POST", "/v1/targets/billing/pause")
    status, body, _ = await stack.call("POST", "/v1/targets/billing/probe")
    assert (status, body["error"]) == (409, "target_disabled")
    assert "paused" in body["message"]
    status, body, _ = await stack.call("POST", "/v1/targets/crm/probe?wait=soon")
    assert (status, body["error"], body["errors"]) == (400, "invalid_wait", [{"field": "wait", "message": "soon"}])


async def test_a_pause_through_one_router_holds_for_another_on_the_same_postgresql_queue(
    pg_schema: str,  # first, so torn down last: the routers stop before their schema is dropped
    router_stack: StackFactory,
    postgres_dsn: str,
) -> None:
    """Router A pauses crm; router B, sharing A's queue, accepts events for it and sends them nowhere until B
    resumes it (the witness target proves B's events were leased and sent meanwhile)."""
    url = f"{postgres_dsn}?schema={pg_schema}"
    first = await router_stack(queue_url=url, targets=["crm", "witness"])
    second = await router_stack(queue_url=url, targets=["crm", "witness"])
    both = (first, second)

    def delivered(target: str) -> list[str]:
        return sorted(d.event_id for stack in both for d in stack.outcomes.delivered if d.target == target)

    assert (await first.call("POST", "/v1/targets/crm/pause"))[0] == 200
    assert (await second.call("POST", "/v1/events", json=[{"id": "held"}]))[0] == 202
    await until(lambda: len(delivered("witness")) >= 1)  # two routers' outcomes: either may send it
    assert delivered("witness") == ["held"]  # once: neither router took the other's lease
    assert delivered("crm") == []
    _, body, _ = await second.call("GET", "/v1/status?target=crm")
    assert body["targets"][0]["hold"] == "paused"
    assert body["queue"]["pendingByTarget"]["crm"] == 1

    assert (await second.call("POST", "/v1/targets/crm/resume"))[0] == 200
    assert (await second.call("POST", "/v1/events", json=[{"id": "canary"}]))[0] == 202
    await until(lambda: len(delivered("crm")) >= 2)
    assert delivered("crm") == ["canary", "held"]
