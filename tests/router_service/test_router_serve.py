"""`cxeb router serve`'s start: one queue one owner, a queue file per targets file, SSRF refusals said once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxone_eventbridge.cli import router_serve
from cxone_eventbridge.cli.main import app
from cxone_eventbridge.exceptions import QueueInUseError
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.router.queue.postgres import PostgresQueue
from cxone_eventbridge.router.queue_owner import QueueOwnerLock
from cxone_eventbridge.ssrf import EgressPolicy

from ..ports import free_port
from ..router_serve import cxeb, owner_name_held

runner = CliRunner()


def test_a_second_owner_of_a_queue_is_refused_naming_the_first(tmp_path: Path) -> None:
    """While one lock holds a queue file, another refuses with the holder's pid; after release it may take it."""
    queue = tmp_path / "q" / "router.db"
    with QueueOwnerLock(queue):
        with pytest.raises(QueueInUseError) as caught, QueueOwnerLock(queue):
            pass
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(caught.value)
        assert "--db" in str(caught.value)
    with QueueOwnerLock(queue) as lock:
        assert lock.path.read_text().startswith(f"pid {os.getpid()}")


def test_router_serve_on_a_held_queue_exits_1_before_listening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`router serve --db` on a queue another router holds exits 1 with a message naming that process."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text("- name: a\n  endpoint: https://hooks.example.com/x\n")
    with QueueOwnerLock(tmp_path / "q.db"):
        result = runner.invoke(
            app, ["router", "serve", "--targets", "t.yaml", "--db", "q.db", "--no-audit-log", "--port", "0"]
        )
    assert result.exit_code == 1, result.output
    assert "the queue q.db is in use by another router (pid" in result.stderr
    assert "listening" not in result.stderr


def test_the_default_queue_file_is_one_per_targets_file(tmp_path: Path) -> None:
    """Two targets files in one directory get two queue files under .cxeb/router/; --from-api its own."""
    first = router_serve.default_queue_path(tmp_path / "a" / "targets.yaml")
    second = router_serve.default_queue_path(tmp_path / "b" / "targets.yaml")
    assert first != second
    assert first.parent == second.parent == Path(".cxeb/router")
    assert first.name.startswith("targets-")
    assert router_serve.default_queue_path(None) == Path(".cxeb/router/from-api.db")


async def test_endpoints_the_ssrf_guard_refuses_are_named_with_the_flag_that_admits_them() -> None:
    """A target on loopback is reported with its address and --allow-private; one on an allowed range is not."""
    targets = [
        IntegrationTarget(name="local", endpoint="https://127.0.0.1:8743/hook"),
        IntegrationTarget(name="v6", endpoint="https://[::1]:8743/hook"),
    ]
    refused = await router_serve.refused_endpoints(targets, EgressPolicy.from_cidrs([]))
    assert [(r.target, r.address, r.admitted_by) for r in refused] == [
        ("local", "127.0.0.1", "--allow-private 127.0.0.1/32"),
        ("v6", "::1", "--allow-private ::1/128"),
    ]
    assert "loopback" in refused[0].reason
    assert await router_serve.refused_endpoints(targets, EgressPolicy.from_cidrs(["127.0.0.0/8", "::1/128"])) == []


def test_every_target_refused_is_said_once_and_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    """When the guard refuses every target, one error lists each with its address and the flag; no per-event noise."""
    refused = [router_serve.RefusedEndpoint("local", "https://127.0.0.1:8743/hook", "127.0.0.1", "a loopback address")]
    router_serve.announce_refusals(refused, total=1)
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert "refuses every target (1)" in err
    assert "local (https://127.0.0.1:8743/hook): 127.0.0.1 is a loopback address; --allow-private 127.0.0.1/32" in err


@pytest.mark.postgres
async def test_a_router_whose_owner_name_is_live_elsewhere_is_refused_at_start(
    tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    """`router serve` on a PostgreSQL queue where another live process holds this router's owner name
    (`host:port`: two containers with one host name and port) exits 1 with one line naming the holder, no
    traceback, and never listens."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True):
        pass
    port = free_port()
    owner = f"{socket.gethostname()}:{port}"
    async with owner_name_held(postgres_dsn, pg_schema, owner):
        (tmp_path / "t.yaml").write_text(
            "- name: crm\n  endpoint: https://127.0.0.1:9/hook\n  eventPattern:\n    eventType: [call.ended]\n"
        )
        code, _, output = await cxeb(
            *("router", "serve", "--targets", "t.yaml", "--port", str(port), "--no-audit-log"),
            *("--allow-private", "127.0.0.0/8", "--queue", f"{postgres_dsn}?schema={pg_schema}"),
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith(("CXEB_", "CXONE_"))},
        )
    assert code == 1, output
    assert f"under the owner name '{owner}' (connected from" in output
    assert "Traceback" not in output
    assert "listening on" not in output
