"""deploy/systemd/cxeb-router.service: systemd accepts it, and it runs `cxeb router serve` with real options."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app

from .conftest import DEPLOY

UNIT = DEPLOY / "systemd" / "cxeb-router.service"
CXEB = str(Path(sys.executable).with_name("cxeb"))


def unit_values(key: str) -> list[str]:
    """Every value of ``key`` in the unit (continuation lines joined)."""
    text = UNIT.read_text().replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{key}=(.*)$", text, flags=re.M)]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say (with ExecStart pointed at this venv's cxeb)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit is verified where it is")
    unit = tmp_path / "cxeb-router.service"
    unit.write_text(UNIT.read_text().replace("/opt/cxeb/bin/cxeb", CXEB))
    verified = subprocess.run([analyze, "verify", str(unit)], check=False, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert str(unit) not in verified.stderr, verified.stderr


def test_the_unit_runs_router_serve_with_options_it_has_and_stops_gracefully() -> None:
    """Every option in ExecStart is one `cxeb router serve` takes; SIGTERM with time to drain before SIGKILL."""
    [exec_start] = unit_values("ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0] == "/opt/cxeb/bin/cxeb"
    assert argv[argv.index("router") : argv.index("router") + 2] == ["router", "serve"]
    help_text = CliRunner().invoke(app, ["router", "serve", "--help"], env={"COLUMNS": "200"}).output
    for flag in (arg for arg in argv[argv.index("serve") + 1 :] if arg.startswith("--")):
        assert flag in help_text, flag
    assert unit_values("KillSignal") == ["SIGTERM"]
    drain = float(argv[argv.index("--drain-deadline") + 1])
    assert float(unit_values("TimeoutStopSec")[0]) > drain
    assert not [arg for arg in argv if "KEY" in arg.upper()], "the ingest key belongs in the EnvironmentFile"
