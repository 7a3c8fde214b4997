"""`cxeb router send/status/dlq/enable` against a router service on loopback (the CLI runs in a worker thread)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import Result
from pydantic import SecretStr
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.router.api_client import RetryNotice, RouterClient
from cxone_eventbridge.router.event_sender import EventSender, check_line

from .conftest import INGEST_KEY, StackFactory

runner = CliRunner()


async def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in a thread: it has its own event loop, and the service keeps serving from this one."""
    environment = {"CXEB_INGEST_KEY": INGEST_KEY, **(env or {})}
    return await asyncio.to_thread(runner.invoke, app, list(args), env=environment)


async def test_send_checks_lines_locally_reports_them_and_exits_1(router_stack: StackFactory, tmp_path: Path) -> None:
    """Good lines are delivered; bad lines are reported by number and skipped; the exit code is 1."""
    stack = await router_stack()
    lines = ['{"id": "a"}', "", "{broken", '{"id": "b"}', "[1]", '{"id": 7}', '{"id": "c"}']
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    result = await invoke("router", "send", str(tmp_path / "events.jsonl"), "--url", stack.url, "--output", "json")
    assert result.exit_code == 1, result.output
    assert "line 3: not valid JSON" in result.stderr
    assert "line 5: not a JSON object" in result.stderr
    assert "line 6: id must be a non-empty string" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["accepted"] == 3
    assert [r["line"] for r in summary["rejectedLocally"]] == [3, 5, 6]
    await stack.outcomes.wait(delivered=3)
    assert sorted(json.loads(r["body"])["id"] for r in stack.receiver.records()) == ["a", "b", "c"]


async def test_send_of_only_good_lines_exits_0_and_adds_ids(router_stack: StackFactory, tmp_path: Path) -> None:
    """All lines accepted: exit 0, and events without an id got one (so a retried POST cannot duplicate)."""
    stack = await router_stack()
    (tmp_path / "events.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    result = await invoke("router", "send", str(tmp_path / "events.jsonl"), "--url", stack.url, "--priority", "1")
    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 rejected" in result.stderr
    await stack.outcomes.wait(delivered=2)
    bodies = [json.loads(r["body"]) for r in stack.receiver.records()]
    assert all(isinstance(b["id"], str) and b["id"] for b in bodies)


async def test_send_with_a_wrong_key_fails_with_401(router_stack: StackFactory, tmp_path: Path) -> None:
    """A refused ingest key is an error naming 401 (exit 1), not a retry loop."""
    stack = await router_stack()
    (tmp_path / "events.jsonl").write_text('{"n": 1}\n')
    result = await invoke(
        "router", "send", str(tmp_path / "events.jsonl"), "--url", stack.url, "--ingest-key", "w" * 20
    )
    assert result.exit_code == 1
    assert "401" in result.stderr


async def test_send_of_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    """A FILE that cannot be read exits 2 naming it."""
    result = await invoke("router", "send", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2
    assert "nope.jsonl" in result.stderr


async def test_send_events_retries_503_and_drops_items_the_router_names() -> None:
    """A 503 is retried; a 422 naming a line is reported with its file line number and the rest is resent."""
    calls: list[list[dict[str, Any]]] = []

    async def handler(request: web.Request) -> web.Response:
        events = [json.loads(line) for line in (await request.read()).splitlines() if line]
        calls.append(events)
        if len(calls) == 1:
            return web.json_response({"error": "queue_full"}, status=503, headers={"Retry-After": "0"})
        bad = [n for n, e in enumerate(events, start=1) if e.get("poison")]
        if bad:
            errors = [{"field": f"line {n}", "message": "refused by a filter"} for n in bad]
            return web.json_response({"error": "invalid_event", "message": "bad", "errors": errors}, status=422)
        return web.json_response({"accepted": len(events), "ids": [e["id"] for e in events]}, status=202)

    server_app = web.Application()
    server_app.router.add_post("/v1/events", handler)
    runner_ = web.AppRunner(server_app)
    await runner_.setup()
    site = web.TCPSite(runner_, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner_.addresses[0][1]}"
    try:
        stream = io.StringIO('{"id": "a"}\n{"id": "b", "poison": true}\n{"id": "c"}\n')
        notices: list[RetryNotice] = []

        async def no_wait(_seconds: float) -> None:
            return None

        async with RouterClient(url, ingest_key=SecretStr(INGEST_KEY), sleep=no_wait, on_retry=notices.append) as api:
            sender = EventSender(api, default_priority=5)
            summary = await sender.send(stream)
            summary.retries = len(notices)
    finally:
        await runner_.cleanup()
    assert summary.retries == 1
    assert summary.accepted == 2
    assert summary.rejected_by_router == [(2, "refused by a filter")]
    assert [e["id"] for e in calls[-1]] == ["a", "c"]


async def test_status_table_and_json(router_stack: StackFactory) -> None:
    """`router status` shows each target with its counts, as a table and as JSON."""
    stack = await router_stack(targets=["crm", "bi"])
    await stack.call("POST", "/v1/events", json=[{"n": 1}, {"n": 2}])
    await stack.outcomes.wait(delivered=4)
    result = await invoke("router", "status", "--url", stack.url, "--output", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {row["target"]: row["delivered"] for row in data["targets"]} == {"bi": 2, "crm": 2}
    table = await invoke("router", "status", "--url", stack.url, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "crm" in table.stdout
    assert "closed" in table.stdout


async def test_dlq_list_replay_purge_and_enable(router_stack: StackFactory) -> None:
    """The dlq commands list, replay and purge dead letters; enable answers for known and unknown targets."""
    stack = await router_stack(receiver_status=400)
    await stack.call("POST", "/v1/events", json=[{"id": "x1"}, {"id": "x2"}])
    await stack.outcomes.wait(dead=2)
    listed = await invoke("router", "dlq", "list", "--url", stack.url, "--output", "json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert sorted(i["eventId"] for i in items) == ["x1", "x2"]
    table = await invoke("router", "dlq", "list", "--url", stack.url, "--target", "crm", env={"COLUMNS": "200"})
    assert "permanent" in table.stdout
    replayed = await invoke("router", "dlq", "replay", "--url", stack.url, "--id", items[0]["deliveryId"])
    assert replayed.exit_code == 0, replayed.output
    assert "1 dead letter(s) replayed" in replayed.stderr
    await stack.outcomes.wait(dead=3)
    purged = await invoke("router", "dlq", "purge", "--url", stack.url, "--yes", "--output", "json")
    assert json.loads(purged.stdout) == {"purged": 2}
    enabled = await invoke("router", "enable", "crm", "--url", stack.url)
    assert enabled.exit_code == 0, enabled.output
    unknown = await invoke("router", "enable", "nobody here", "--url", stack.url)
    assert unknown.exit_code == 1
    assert "knows no target named or with id 'nobody here'; it knows: crm" in unknown.stderr


async def test_an_unreachable_router_is_exit_1_with_the_url() -> None:
    """Talking to a router that is not running is a clear error (exit 1) naming its URL."""
    result = await invoke("router", "status", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the router at http://127.0.0.1:9" in result.stderr


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"a": NaN}', "NaN"),
        ('{"id": ""}', "id must be"),
        ('{"a": 1e999}', "beyond the range"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than 64"),
    ],
)
def test_check_line_names_the_problem(line: str, problem: str) -> None:
    """check_line refuses what the router would refuse, saying why."""
    with pytest.raises(ValueError, match=problem):
        check_line(line, default_priority=5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0", "--targets", "t.yaml"], "without an ingest key"),
        ([], "exactly one of --targets FILE or --from-api"),
        (["--targets", "t.yaml", "--from-api"], "exactly one of --targets FILE or --from-api"),
        (["--targets", "missing.yaml"], "cannot read missing.yaml"),
        (["--targets", "t.yaml", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--targets", "t.yaml", "--allow-private", "not-a-cidr"], "--allow-private"),
    ],
)
def test_serve_refuses_bad_options_with_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serving beyond loopback without a key, a missing or doubled source, bad TLS or CIDR options: exit 2, no start."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text("- name: a\n  endpoint: https://127.0.0.1:9/x\n")
    result = runner.invoke(
        app, ["router", "serve", *args, "--no-audit-log", "--db", "q.db"], env={"CXEB_INGEST_KEY": None}
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "q.db").exists()


async def test_send_honours_each_events_own_priority(router_stack: StackFactory, tmp_path: Path) -> None:
    """An event's own "priority" field decides its queue priority; --priority is the default for the rest."""
    stack = await router_stack(receiver_status=400)
    lines = ['{"id": "urgent", "priority": 0}', '{"id": "late", "priority": 9}', '{"id": "plain"}']
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    sent = await invoke("router", "send", str(tmp_path / "events.jsonl"), "--url", stack.url, "--priority", "3")
    assert sent.exit_code == 0, sent.output
    assert "by priority: 1 at 0, 1 at 3, 1 at 9" in sent.stderr
    await stack.outcomes.wait(dead=3)
    listed = await invoke("router", "dlq", "list", "--url", stack.url, "--output", "json")
    assert {i["eventId"]: i["priority"] for i in json.loads(listed.stdout)} == {"urgent": 0, "late": 9, "plain": 3}


async def test_send_refuses_a_priority_out_of_range_by_line(router_stack: StackFactory, tmp_path: Path) -> None:
    """A "priority" that is not an integer from 0 to 9 rejects its line locally, naming it."""
    stack = await router_stack()
    (tmp_path / "events.jsonl").write_text('{"priority": 12}\n{"priority": "high"}\n{"n": 1}\n')
    result = await invoke("router", "send", str(tmp_path / "events.jsonl"), "--url", stack.url)
    assert result.exit_code == 1
    assert "line 1: priority must be an integer from 0 to 9" in result.stderr
    assert "line 2: priority must be an integer from 0 to 9" in result.stderr


async def test_dlq_list_says_how_many_of_how_many_one_line_each_with_iso_times(router_stack: StackFactory) -> None:
    """`dlq list --limit 2` of 3 says "2 of 3"; each dead letter is one line with its whole id; JSON times are ISO-8601."""
    stack = await router_stack(receiver_status=400)
    await stack.call("POST", "/v1/events", json=[{"id": "d1"}, {"id": "d2"}, {"id": "d3"}])
    await stack.outcomes.wait(dead=3)
    table = await invoke("router", "dlq", "list", "--url", stack.url, "--limit", "2", env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert "2 of 3 dead letters, newest first" in table.stderr
    ids = [
        i["deliveryId"]
        for i in json.loads((await invoke("router", "dlq", "list", "--url", stack.url, "-o", "json")).stdout)
    ]
    rows = [line for line in table.stdout.splitlines() if any(i in line for i in ids)]
    assert len(rows) == 2  # one line per dead letter, and the id on it whole
    listed = await invoke("router", "dlq", "list", "--url", stack.url, "-o", "json")
    item = json.loads(listed.stdout)[0]
    assert item["deadAt"].endswith("Z")
    assert item["acceptedAt"][:4].isdigit()
    assert item["acceptedAt"][4] == "-"


async def test_dlq_list_at_80_columns_keeps_each_id_and_target_whole_on_one_line(router_stack: StackFactory) -> None:
    """A long target name and reason do not squeeze the id: at COLUMNS=80 each dead letter is one line
    holding its whole delivery id, its whole target name and its reason with the status."""
    long_name = "compliance-archive-of-the-regional-contact-centre"
    stack = await router_stack(receiver_status=400, targets=[long_name])
    await stack.call("POST", "/v1/events", json=[{"id": "w1"}, {"id": "w2"}])
    await stack.outcomes.wait(dead=2)
    table = await invoke("router", "dlq", "list", "--url", stack.url, env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    listed = json.loads((await invoke("router", "dlq", "list", "--url", stack.url, "-o", "json")).stdout)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["DELIVERY", "ID", "TRIES", "REASON", "TARGET", "LAST", "ERROR"]
    for item in listed:
        (line,) = [line for line in lines if item["deliveryId"] in line]
        assert long_name in line
        assert f"{item['reason']} {item['lastStatus']}" in line
    assert len(lines) == 1 + len(listed)


async def test_a_missing_or_wrong_ingest_key_says_how_to_pass_one(router_stack: StackFactory) -> None:
    """401 from the router: the message says whether a key was given and how to pass one (flag or variable)."""
    stack = await router_stack()
    missing = await asyncio.to_thread(
        runner.invoke, app, ["router", "status", "--url", stack.url], env={"CXEB_INGEST_KEY": None}
    )
    assert missing.exit_code == 1
    assert "no ingest key was given; pass the key `cxeb router serve` was started with" in missing.stderr
    assert "--ingest-key KEY or in CXEB_INGEST_KEY" in missing.stderr
    wrong = await invoke("router", "status", "--url", stack.url, "--ingest-key", "w" * 20)
    assert "the ingest key given was refused" in wrong.stderr
    assert "w" * 20 not in wrong.output


def test_pause_help_says_paused_time_does_not_count_toward_the_maximum_event_age() -> None:
    """`pause --help` says what the queue does (the contract suite's
    test_time_spent_paused_does_not_count_toward_the_maximum_age): time paused is no age."""
    help_text = " ".join(runner.invoke(app, ["router", "pause", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "Time spent paused does not count toward the maximum event age (24 h)" in help_text
