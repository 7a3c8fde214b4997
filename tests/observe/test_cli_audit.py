"""`cxeb audit verify`: exit codes and messages for an intact, torn, tampered and missing log."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.observe.audit import AuditLog

runner = CliRunner()


def make_log(path: Path, count: int = 4) -> None:
    audit = AuditLog(path, clock=lambda: 1_700_000_000.0)
    for n in range(count):
        audit.record("apply", target=f"t{n}")
    audit.close()


def test_verify_passes_on_an_intact_log(tmp_path: Path) -> None:
    """An untouched log verifies with exit 0 and says how many records it checked."""
    path = tmp_path / "audit.log"
    make_log(path)
    result = runner.invoke(app, ["audit", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "4 record(s)" in result.stderr


def test_verify_fails_with_the_line_number_after_an_edit(tmp_path: Path) -> None:
    """Editing one line makes verify exit 1 and name that line."""
    path = tmp_path / "audit.log"
    make_log(path)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"t2"', '"t9"')
    path.write_text("".join(lines))
    result = runner.invoke(app, ["audit", "verify", str(path)])
    assert result.exit_code == 1
    assert "line 3" in result.stderr
    assert "tampered" in result.stderr


def test_verify_json_output_reports_the_problem(tmp_path: Path) -> None:
    """--output json prints the verdict as JSON and still exits 1 on tampering."""
    path = tmp_path / "audit.log"
    make_log(path)
    lines = path.read_text().splitlines(keepends=True)
    del lines[1]
    path.write_text("".join(lines))
    result = runner.invoke(app, ["audit", "verify", str(path), "--output", "json"])
    assert result.exit_code == 1
    verdict = json.loads(result.stdout)
    assert verdict["ok"] is False
    assert verdict["problem"]["kind"] == "removed"
    assert verdict["problem"]["line"] == 2


def test_verify_warns_but_passes_on_a_torn_last_line(tmp_path: Path) -> None:
    """A half-written last line (a crash) is a warning with exit 0, not tampering."""
    path = tmp_path / "audit.log"
    make_log(path)
    with path.open("a") as handle:
        handle.write('{"seq":5,"prev":"ab')
    result = runner.invoke(app, ["audit", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "torn" in result.stderr


def test_verify_of_a_missing_log_is_an_input_error(tmp_path: Path) -> None:
    """A path with no log exits 2 with a message naming it."""
    result = runner.invoke(app, ["audit", "verify", str(tmp_path / "none.log")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_verify_of_a_log_starting_mid_chain_says_incomplete_not_intact(tmp_path: Path) -> None:
    """A log whose first lines are gone verifies unaltered, but the verdict says incomplete, never intact."""
    path = tmp_path / "audit.log"
    make_log(path)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[2:]))
    result = runner.invoke(app, ["audit", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "intact" not in result.stderr
    assert "unaltered but incomplete (starts at seq 3)" in result.stderr
    as_json = runner.invoke(app, ["audit", "verify", str(path), "--output", "json"])
    assert json.loads(as_json.stdout)["complete"] is False


def test_verify_reports_each_gap_the_chain_records(tmp_path: Path) -> None:
    """A log whose file was deleted while in use: the continuation is warned about and the verdict is incomplete."""
    path = tmp_path / "audit.log"
    audit = AuditLog(path, clock=lambda: 1_700_000_000.0)
    audit.record("apply", target="t0")
    path.unlink()
    audit.record("apply", target="t1")
    audit.close()
    result = runner.invoke(app, ["audit", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "deleted or replaced while a writer used it" in result.stderr
    assert "1 recorded gap(s)" in result.stderr


def test_verify_counts_with_thousands_separators(tmp_path: Path) -> None:
    """Counts and seqs read like every other CLI number: "1,200 record(s), seq 1..1,200", not "1200"."""
    path = tmp_path / "audit.log"
    make_log(path, count=1200)
    result = runner.invoke(app, ["audit", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "1,200 record(s), seq 1..1,200, 1 file(s)" in result.stderr
