"""deploy/systemd: systemd accepts the unit, it runs `cxeb router serve --config` on the shipped router.toml,
that file (the one docs/router.md shows) is valid, and a router started from it stops gracefully on SIGTERM."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app

from ..ports import free_port
from ..router_serve import cxeb, start_router
from .conftest import DEPLOY

UNIT = DEPLOY / "systemd" / "cxeb-router.service"
ROUTER_TOML = DEPLOY / "systemd" / "router.toml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "router.md"
CXEB = str(Path(sys.executable).with_name("cxeb"))
KEY = "systemd-unit-ingest-key-0123456789"

pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CXEB_*/CXONE_* of the developer's reaches the commands."""
    for name in [name for name in os.environ if name.startswith(("CXEB_", "CXONE_"))]:
        monkeypatch.delenv(name)


def unit_values(key: str, text: str | None = None) -> list[str]:
    """Every value of ``key`` in the unit (continuation lines joined)."""
    text = (UNIT.read_text() if text is None else text).replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{key}=(.*)$", text, flags=re.M)]


def exec_start() -> list[str]:
    [line] = unit_values("ExecStart")
    return shlex.split(line)


def verify(analyze: str, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([analyze, "verify", str(unit)], check=False, capture_output=True, text=True)


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say (ExecStart pointed at this venv's cxeb), and it would:
    the same unit with a misspelt directive is reported, so a pass is not a verifier that checks nothing."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit is verified where it is")
    unit = tmp_path / "cxeb-router.service"
    unit.write_text(UNIT.read_text().replace("/opt/cxeb/bin/cxeb", CXEB))
    verified = verify(analyze, unit)
    assert verified.returncode == 0, verified.stderr
    assert str(unit) not in verified.stderr, verified.stderr
    broken = tmp_path / "broken" / "cxeb-router.service"
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("KillSignal=SIGTERM", "KillSignall=SIGTERM"))
    assert "KillSignall" in verify(analyze, broken).stderr


def test_the_unit_runs_serve_from_the_config_file_with_no_secret_in_the_unit() -> None:
    """ExecStart is `cxeb ... router serve --config /etc/cxeb/router.toml`, nothing else; the key comes from
    the EnvironmentFile through router.toml's ${env:CXEB_INGEST_KEY}, and no key is written in the unit."""
    argv = exec_start()
    assert argv[0] == "/opt/cxeb/bin/cxeb"
    assert argv[argv.index("router") :] == ["router", "serve", "--config", "/etc/cxeb/router.toml"]
    assert unit_values("EnvironmentFile") == ["/etc/cxeb/router.env"]  # required: no key, no start
    assert not any("CXEB_INGEST_KEY" in value for value in unit_values("Environment"))
    assert "ingest-key" not in " ".join(argv)
    assert tomllib.loads(ROUTER_TOML.read_text())["ingest-key"] == "${env:CXEB_INGEST_KEY}"
    assert "install -m 0644 router.toml /etc/cxeb/" in UNIT.read_text()  # the install steps ship the file


def test_the_stop_gives_the_drain_deadline_time_before_sigkill() -> None:
    """SIGTERM first; TimeoutStopSec is longer than router.toml's drain-deadline."""
    assert unit_values("KillSignal") == ["SIGTERM"]
    drain = tomllib.loads(ROUTER_TOML.read_text())["drain-deadline"]
    assert float(unit_values("TimeoutStopSec")[0]) > drain


def test_the_config_file_docs_show_is_the_shipped_one_and_checks(tmp_path: Path) -> None:
    """docs/router.md's router.toml is deploy/systemd/router.toml, and `router config --check` accepts it:
    with the key set, every option; without it (an admin's shell), a warning naming the variable, exit 0."""
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert ROUTER_TOML.read_text() in blocks
    checked = CliRunner().invoke(app, ["router", "config", "--check", str(ROUTER_TOML)], env={"CXEB_INGEST_KEY": KEY})
    assert checked.exit_code == 0, checked.output
    assert f"{ROUTER_TOML}: 7 option(s) set, all valid" in checked.output
    assert "ingest-key = (set)" in checked.output
    assert KEY not in checked.output
    shell = CliRunner().invoke(app, ["router", "config", "--check", str(ROUTER_TOML)])
    assert shell.exit_code == 0, shell.output
    assert "ingest-key: ${env:CXEB_INGEST_KEY}: not set here, so not checked" in " ".join(shell.output.split())


async def test_the_shipped_config_serves_demands_its_key_and_stops_with_exit_0(tmp_path: Path) -> None:
    """router.toml, its /etc and /var paths moved under tmp, run as ExecStart runs it: without the
    EnvironmentFile's key it refuses to start naming the variable; with it, it listens, and SIGTERM ends it 0."""
    port = free_port()
    text = ROUTER_TOML.read_text().replace("port = 8790", f"port = {port}")
    for directory in ("/etc/cxeb/", "/var/lib/cxeb/", "/var/log/cxeb/"):
        moved = tmp_path / directory.strip("/").replace("/", "-")
        moved.mkdir()
        text = text.replace(directory, f"{moved}/")
    (tmp_path / "etc-cxeb" / "targets.yaml").write_text("- name: local\n  endpoint: https://127.0.0.1:9/hook\n")
    config = tmp_path / "etc-cxeb" / "router.toml"
    config.write_text(text)
    argv = exec_start()
    run_as_the_unit = [*argv[1 : argv.index("--config") + 1], str(config)]  # --log-format json router serve ...
    code, _, stderr = await cxeb(*run_as_the_unit, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}, cwd=tmp_path)
    assert code == 2, stderr
    assert "ingest-key: ${env:CXEB_INGEST_KEY} names an environment variable that is not set" in stderr
    env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "CXEB_INGEST_KEY": KEY}
    router = await start_router("--config", str(config), env=env, cwd=tmp_path, ingest_key=KEY)
    try:
        assert router.url == f"http://127.0.0.1:{port}"
        assert await router.send([{"id": "e-1", "eventType": "call.ended"}]) == ["e-1"]
        assert (tmp_path / "var-lib-cxeb" / "cxeb-router.db").exists()
    finally:
        code = await router.stop(signal.SIGTERM)
    assert code == 0, router.log
    assert KEY not in router.log
