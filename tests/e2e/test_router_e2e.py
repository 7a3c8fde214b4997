"""End to end: `cxeb router serve` as a real process, a real HTTPS receiver, `cxeb router send`, metrics, status, audit."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.cli.main import app
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.sandbox.receiver import RunningReceiver

from ..router_serve import cxeb, serving
from ..waiting import until

pytestmark = pytest.mark.e2e

KEY = "e2e-ingest-key-0123456789abcdef"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "events.jsonl"


async def test_router_serve_send_metrics_status_audit_and_sigterm(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], tmp_path: Path
) -> None:
    """Events sent with `cxeb router send` reach the receiver; metrics, status and audit agree; SIGTERM exits 0."""
    receiver = await https_receiver()
    (tmp_path / "targets.yaml").write_text(
        f"- name: all events\n  endpoint: {receiver.url}/hooks/all\n"
        f"- name: voice\n  endpoint: {receiver.url}/hooks/voice\n"
        "  eventPattern:\n    contact:\n      channel: [voice]\n"
    )
    events = [json.loads(line) for line in EXAMPLES.read_text().splitlines()[:200]]
    voice = sum(1 for e in events if e["contact"]["channel"] == "voice")
    assert 0 < voice < 200
    lines = [json.dumps(e) for e in events[:100]] + ["{not json", "[1, 2]"] + [json.dumps(e) for e in events[100:]]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")

    env = {**os.environ, "CXEB_INGEST_KEY": KEY, "NO_COLOR": "1", "COLUMNS": "200"}
    async with serving(
        *("--port", "0", "--targets", "targets.yaml", "--db", "queue.db"),
        *("--ca-bundle", str(receiver.ca_path), "--allow-private", "127.0.0.0/8", "--audit-log", "audit.log"),
        env=env,
        cwd=tmp_path,
        ingest_key=KEY,
    ) as server:
        url = server.url
        assert server.stderr_lines[0].startswith("router listening on http://127.0.0.1:"), server.log

        code, out, err = await cxeb("router", "send", "events.jsonl", "--url", url, env=env, cwd=tmp_path)
        assert code == 1, err  # two lines were rejected
        assert "line 101: not valid JSON" in err
        assert "line 102: not a JSON object" in err
        assert "200 accepted, 2 rejected" in err

        async def all_delivered() -> bool:  # by the router's count: the receiver counts arrivals, not outcomes
            return sum(row["delivered"] for row in (await server.get("/v1/status"))["targets"]) >= 200 + voice

        await until(all_delivered)

        async with httpx.AsyncClient(base_url=url) as client:
            bad = await client.post("/v1/events", content=b"{oops", headers={"Authorization": f"Bearer {KEY}"})
            assert bad.status_code == 400
            assert bad.json()["error"] == "malformed_json"
            unauthorized = await client.post("/v1/events", json={"a": 1})
            assert unauthorized.status_code == 401
            metrics = (await client.get("/metrics")).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        assert samples["cxeb_deliveries_total", (("outcome", "delivered"), ("target", "all events"))] == 200
        assert samples["cxeb_deliveries_total", (("outcome", "delivered"), ("target", "voice"))] == voice
        assert samples["cxeb_ingest_rejections_total", (("reason", "malformed_json"),)] == 1
        assert samples["cxeb_ingest_rejections_total", (("reason", "unauthorized"),)] == 1
        assert samples["cxeb_queue_depth", (("state", "delivered"),)] == 200 + voice

        code, out, err = await cxeb("router", "status", "--url", url, "--output", "json", env=env, cwd=tmp_path)
        assert code == 0, err
        status = json.loads(out)
        by_target = {row["target"]: row for row in status["targets"]}
        assert (by_target["all events"]["delivered"], by_target["voice"]["delivered"]) == (200, voice)
        assert by_target["voice"]["p99Ms"] >= by_target["voice"]["p50Ms"] > 0
        assert await server.stop(signal.SIGTERM) == 0, server.log
        assert "router stopped" in server.log
        assert "Traceback" not in server.log

    audit = tmp_path / "audit.log"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(records) == 200 + voice
    assert all(r["success"] for r in records)
    assert KEY not in audit.read_text()
    # `cxeb audit verify` in process (the server is gone, so nothing else needs this loop)
    verified = CliRunner().invoke(app, ["audit", "verify", str(audit)])
    assert verified.exit_code == 0, verified.output
    assert f"{200 + voice} record(s)" in verified.stderr
    text = audit.read_text().splitlines(keepends=True)
    text[10] = text[10].replace('"success":true', '"success":false')
    audit.write_text("".join(text))
    tampered = CliRunner().invoke(app, ["audit", "verify", str(audit)])
    assert tampered.exit_code == 1
    assert "line 11" in tampered.stderr


async def test_router_serve_from_api_picks_up_new_targets_without_restart(
    sandbox: Any, https_receiver: Callable[..., Awaitable[RunningReceiver]], tmp_path: Path
) -> None:
    """`serve --from-api` loads the routes table at start and a target created later receives events."""
    receiver = await https_receiver()
    settings = sandbox.settings()
    async with CXoneClient.from_settings(settings) as client:
        await client.targets.create(IntegrationTarget(name="first", endpoint=f"{receiver.url}/hooks/first"))
        env = {
            **os.environ,
            "CXEB_INGEST_KEY": KEY,
            "CXONE_BASE_URL": settings.base_url or "",
            "CXONE_TOKEN_URL": settings.resolved_token_url or "",
            "CXONE_CLIENT_ID": settings.client_id or "",
            "CXONE_CLIENT_SECRET": sandbox.client_secret,
        }
        async with serving(
            *("--port", "0", "--from-api", "--sync-interval", "1", "--db", "queue.db"),
            *("--ca-bundle", str(receiver.ca_path), "--allow-private", "127.0.0.0/8", "--no-audit-log"),
            env=env,
            cwd=tmp_path,
            ingest_key=KEY,
        ) as server:
            async with server.client() as http:
                assert (await http.post("/v1/events", json={"id": "e1"})).status_code == 202
                await until(lambda: receiver.request_count == 1)
                await client.targets.create(IntegrationTarget(name="second", endpoint=f"{receiver.url}/hooks/second"))

                async def second_is_routed() -> bool:  # the next sync is up to 1 s away
                    status = (await http.get("/v1/status")).json()
                    return "second" in {row["target"] for row in status["targets"]}

                await until(second_is_routed)
                assert (await http.post("/v1/events", json={"id": "e2"})).status_code == 202
                await until(lambda: receiver.request_count == 3)
            paths = sorted(r["path"] for r in receiver.records())
            assert paths == ["/hooks/first", "/hooks/first", "/hooks/second"]
            assert await server.stop(signal.SIGINT) == 0, server.log
