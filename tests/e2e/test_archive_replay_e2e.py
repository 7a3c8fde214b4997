"""End to end: `cxeb router serve --archive-days`, real HTTPS receivers, `router events show` and `router replay`.

A router archives what it accepts and records every attempt; one target is flaky (a 503, then success),
one is broken (500, no retries). After a restart with the broken target mended (and matching one more
kind of event, which matched nothing when it was accepted), a replay re-sends the window to it: new
delivery ids, the ``cxeb-replay-id`` header, the replay metric, and the history shows it all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cxone_eventbridge.router.queue import delivery_id_for
from cxone_eventbridge.router.queue.archive_records import replay_event_id
from cxone_eventbridge.sandbox.receiver import RunningReceiver

from ..router_serve import RouterProcess, cxeb, start_router
from ..waiting import until

pytestmark = pytest.mark.e2e

KEY = "e2e-ingest-key-0123456789abcdef"


def targets_file(path: Path, crm: str, warehouse: str, warehouse_types: list[str], retries: int) -> None:
    path.write_text(
        f"- name: crm\n  endpoint: {crm}/hooks/crm\n  retryPolicy: {{maxRetries: 10}}\n"
        "  eventPattern: {eventType: [call.ended, chat.started]}\n"
        f"- name: warehouse\n  endpoint: {warehouse}/hooks/warehouse\n  retryPolicy: {{maxRetries: {retries}}}\n"
        f"  eventPattern: {{eventType: {json.dumps(warehouse_types)}}}\n"
    )


async def serve(tmp_path: Path, targets: str, ca: Path, env: dict[str, str]) -> RouterProcess:
    return await start_router(
        *("--port", "0", "--targets", targets, "--db", "queue.db", "--archive-days", "7"),
        *("--ca-bundle", str(ca), "--allow-private", "127.0.0.0/8", "--no-audit-log"),
        env=env,
        cwd=tmp_path,
        ingest_key=KEY,
    )


async def stopped(router: RouterProcess) -> None:
    """SIGTERM: the router drains and exits 0 without a traceback."""
    assert await router.stop() == 0, router.log
    assert "Traceback" not in router.log


async def history(url: str, event_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        answer = await client.get(f"/v1/events/{event_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_archive_history_and_replay_to_a_mended_target_across_a_restart(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], tmp_path: Path
) -> None:
    """Attempts are recorded (a failed then successful one shown by `events show`); a replay after a restart
    re-sends the window to the mended target as new deliveries, marked by header and metric."""
    flaky = await https_receiver(fail_rate=0.5, seed=1)  # the first answer is a 503
    broken = await https_receiver(status=500)
    mended = await https_receiver()
    env = {**os.environ, "CXEB_INGEST_KEY": KEY, "NO_COLOR": "1", "COLUMNS": "200"}
    targets_file(tmp_path / "before.yaml", flaky.url, broken.url, ["call.ended"], retries=0)
    targets_file(tmp_path / "after.yaml", flaky.url, mended.url, ["call.ended", "agent.login"], retries=3)
    kinds = ["call.ended"] * 6 + ["chat.started"] * 2 + ["agent.login"] * 2  # agent.login matches no target yet
    events = [{"id": f"e{i}", "eventType": kind, "n": i} for i, kind in enumerate(kinds)]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    router = await serve(tmp_path, "before.yaml", flaky.ca_path, env)
    url = router.url
    try:
        code, _, err = await cxeb("router", "send", "events.jsonl", "--url", url, env=env, cwd=tmp_path)
        assert code == 0, err
        await until(lambda: sum(1 for r in flaky.records() if r["path"] == "/hooks/crm") >= 8 + 1)

        async def settled() -> bool:
            rows = [await history(url, f"e{i}") for i in range(8)]
            states = [d["state"] for row in rows for d in row["deliveries"]]
            return states.count("delivered") == 8 and states.count("dead") == 6

        await until(settled)
        # Every crm delivery succeeded in the end; at least one after a failed attempt.
        crm = [d for i in range(8) for d in (await history(url, f"e{i}"))["deliveries"] if d["target"] == "crm"]
        retried = [d for d in crm if len(d["history"]) > 1]
        assert retried, crm
        first, *_, last = retried[0]["history"]
        assert (first["outcome"], first["status"], first["category"]) == ("retry", 503, "status_5xx")
        assert (last["outcome"], last["status"], last["category"]) == ("success", 200, None)
        assert first["latencyMs"] > 0
        assert first["at"].endswith("Z")
        assert first["at"] < last["at"]

        code, out, err = await cxeb(
            "router", "events", "show", retried[0]["eventId"], "--url", url, env=env, cwd=tmp_path
        )
        assert code == 0, err
        assert f"crm: delivered, {len(retried[0]['history'])} attempt(s)" in out
        assert "retry  503" in out
        assert "status_5xx" in out
        assert "success  200" in out
        lonely = await history(url, "e8")
        assert lonely["deliveries"] == []  # matched nothing, archived all the same
        assert lonely["event"]["eventType"] == "agent.login"
        await stopped(router)

        # Mended: the warehouse target now answers 200 and wants agent.login too.
        router = await serve(tmp_path, "after.yaml", flaky.ca_path, env)
        url = router.url
        code, _, err = await cxeb(
            "router", "replay", "--since", "-1h", "--target", "nope", "--url", url, env=env, cwd=tmp_path
        )
        assert code == 2, err
        assert "--target: no target is named 'nope'" in err
        code, _, err = await cxeb("router", "replay", "--since", "yesterday", "--url", url, env=env, cwd=tmp_path)
        assert code == 2
        assert "--since: 'yesterday' is not a time" in err

        code, out, err = await cxeb(
            *("router", "replay", "--since", "-1h", "--target", "warehouse", "--rate", "50"),
            *("--url", url, "--output", "json"),
            env=env,
            cwd=tmp_path,
        )
        assert code == 0, err
        job = json.loads(out)
        assert (job["state"], job["total"], job["scanned"], job["replayed"], job["deliveries"]) == (
            "done",
            10,
            10,
            8,
            8,
        )
        assert "8 of 10 archived event(s) re-sent" in err
        replay_id = job["replayId"]
        await until(lambda: mended.request_count >= 8)

        received = mended.records()
        assert len(received) == 8
        originals = {e["id"]: e for e in events}
        for record in received:
            headers = {k.lower(): v for k, v in record["headers"].items()}
            assert headers["cxeb-replay-id"] == replay_id
            body = json.loads(record["body"])
            assert body == originals[body["id"]]
            assert headers["webhook-id"] == delivery_id_for(replay_event_id(replay_id, body["id"]), "warehouse")
            assert headers["webhook-id"] != delivery_id_for(body["id"], "warehouse")
        assert sorted(json.loads(r["body"])["eventType"] for r in received) == ["agent.login"] * 2 + ["call.ended"] * 6
        assert not any("cxeb-replay-id" in {k.lower() for k in r["headers"]} for r in flaky.records())

        async def replay_metric() -> bool:
            async with httpx.AsyncClient(base_url=url) as client:
                text = (await client.get("/metrics")).text
            delivered = sum(
                s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "cxeb_replay_deliveries_total"
                and s.labels == {"target": "warehouse", "outcome": "delivered"}
            )
            return delivered == 8

        await until(replay_metric)

        shown = await history(url, "e0")
        rows = sorted((d["target"], d["state"], d["replayId"] or "") for d in shown["deliveries"])
        assert rows == [("crm", "delivered", ""), ("warehouse", "dead", ""), ("warehouse", "delivered", replay_id)]
        dead = next(d for d in shown["deliveries"] if d["state"] == "dead")
        assert dead["reason"] == "retries_exhausted"
        assert [(a["status"], a["category"]) for a in dead["history"]] == [(500, "status_5xx")]
        code, out, err = await cxeb("router", "replays", replay_id, "--url", url, env=env, cwd=tmp_path)
        assert code == 0, err
        assert replay_id in out
        assert "done" in out
        await stopped(router)
    finally:
        await router.close()
