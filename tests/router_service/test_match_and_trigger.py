"""Against a running router: `POST /v1/match` (a dry run on the live table) and `cxeb trigger`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.demo.catalogue import EVENT_TYPES, demo_stream
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file
from cxone_eventbridge.models import InputTransformer

from .conftest import INGEST_KEY, StackFactory, target_for

runner = CliRunner()
pytestmark = pytest.mark.e2e


async def invoke(*args: str, stdin: str | None = None) -> Result:
    """The CLI in a worker thread (its own event loop), while the router serves from this one."""
    return await asyncio.to_thread(runner.invoke, app, list(args), input=stdin, env={"CXEB_INGEST_KEY": INGEST_KEY})


async def test_match_endpoint_is_a_dry_run_on_the_live_table(router_stack: StackFactory) -> None:
    """POST /v1/match names the targets and their transformed bodies; nothing is queued or sent."""
    stack = await router_stack(targets=["crm"])
    stack.router.upsert_target(
        target_for(
            "pager",
            stack.receiver.url,
            event_pattern={"eventType": ["call.abandoned"]},
            input_transformer=InputTransformer(
                input_paths_map={"queue": "$.contact.queue.name"}, input_template='"abandoned in <queue>"'
            ),
        )
    )
    event = {"id": "e1", "eventType": "call.abandoned", "contact": {"queue": {"name": "Sales Queue"}}}
    status, body, _ = await stack.call("POST", "/v1/match", json=event)
    assert status == 200, body
    assert body["matched"] == ["crm", "pager"]
    assert body["deliveries"][1] == {
        "target": "pager",
        "contentType": "text/plain; charset=utf-8",
        "body": "abandoned in Sales Queue",
    }
    assert body["deliveries"][0]["body"] == event
    queue = await stack.router.stats()
    assert queue.pending == 0
    assert stack.receiver.request_count == 0


async def test_match_endpoint_refuses_what_is_not_one_event(router_stack: StackFactory) -> None:
    """Not JSON is 400, not an object 422, without a key 401."""
    stack = await router_stack()
    status, body, _ = await stack.call("POST", "/v1/match", data=b"{nope")
    assert (status, body["error"]) == (400, "malformed_json")
    status, body, _ = await stack.call("POST", "/v1/match", json=[1])
    assert (status, body["error"]) == (422, "not_object")
    status, _, _ = await stack.call("POST", "/v1/match", key=None, json={})
    assert status == 401


async def test_trigger_sends_a_catalogue_event_that_is_delivered(router_stack: StackFactory) -> None:
    """`cxeb trigger call.abandoned` sends one realistic event, accepted and delivered to the receiver."""
    stack = await router_stack()
    result = await invoke("trigger", "call.abandoned", "--url", stack.url, "--tenant", "acme", "-o", "json")
    assert result.exit_code == 0, result.output
    sent = json.loads(result.stdout)
    assert sent["accepted"] == 1
    assert sent["priority"] == 2  # the type's own priority
    await stack.outcomes.wait(delivered=1)
    (record,) = stack.receiver.records()
    delivered = json.loads(record["body"])
    assert delivered == sent["event"]
    assert delivered["eventType"] == "call.abandoned"
    assert delivered["tenantId"] == "acme"
    assert delivered["contact"]["channel"] == "voice"
    again = await invoke("trigger", "queue.threshold.exceeded", "--url", stack.url, "--priority", "9")
    assert again.exit_code == 0, again.output
    assert "sent queue.threshold.exceeded evt-" in again.stderr
    assert "(priority 9)" in again.stderr


async def test_trigger_list_unknown_type_and_refused_key(router_stack: StackFactory) -> None:
    """--list shows the catalogue; an unknown type is exit 2; a wrong key is exit 1 with the router's word."""
    listed = await invoke("trigger", "--list", "-o", "json")
    assert [t["eventType"] for t in json.loads(listed.stdout)] == [t.name for t in EVENT_TYPES]
    unknown = await invoke("trigger", "call.exploded")
    assert unknown.exit_code == 2
    assert "cxeb trigger --list" in unknown.stderr
    stack = await router_stack()
    refused = await invoke("trigger", "contact.queued", "--url", stack.url, "--ingest-key", "wrong-key-000000000")
    assert refused.exit_code == 1
    assert "401" in refused.stderr


async def test_match_cli_and_router_agree(router_stack: StackFactory, tmp_path: Path) -> None:
    """`cxeb match -f` on a targets file gives what a router holding those targets answers on /v1/match."""
    stack = await router_stack(targets=[])
    targets_file = tmp_path / "targets.yaml"
    targets_file.write_text(
        f"""\
- name: Pager
  endpoint: {stack.receiver.url}/pager
  eventPattern: {{eventType: [call.abandoned, queue.threshold.exceeded]}}
  inputTransformer:
    inputPathsMap: {{queue: $.contact.queue.name, wait: $.metrics.waitSeconds}}
    inputTemplate: '{{"text": "<queue>: <wait> s", "wait": <wait>, "target": <aws.events.rule-name>}}'
- name: CRM
  endpoint: {stack.receiver.url}/crm
  eventPattern: {{eventType: [{{prefix: call.}}]}}
  inputPath: $.contact
"""
    )
    loaded = load_targets_file(targets_file, environ={}, resolution=SecretResolution.OFFLINE)
    stack.router.set_targets(loaded.targets)
    stream = demo_stream(40, seed=7, start=datetime(2026, 11, 30, tzinfo=UTC))
    lines = "\n".join(json.dumps(event) for event in stream)
    local = await invoke("match", "-f", str(targets_file), "-", "-o", "json", stdin=lines)
    assert local.exit_code == 0, local.output
    reports = json.loads(local.stdout)
    assert len(reports) == 40
    assert any(report["matched"] == ["CRM", "Pager"] for report in reports)
    for report, event in zip(reports, stream, strict=True):
        _, remote, _ = await stack.call("POST", "/v1/match", json=event)
        assert (report["matched"], report["deliveries"]) == (remote["matched"], remote["deliveries"])
