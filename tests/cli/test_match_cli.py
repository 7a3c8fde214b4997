"""`cxeb match`: a pattern or a targets file against an event or a JSON-lines stream; exit 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app

runner = CliRunner()
PATTERN = '{"eventType": ["call.abandoned"], "metrics": {"waitSeconds": [{"numeric": [">", 60]}]}}'
ABANDONED = {"id": "e1", "eventType": "call.abandoned", "agent": {"name": "Ana"}, "metrics": {"waitSeconds": 80}}
TARGETS = """\
- name: Pager
  endpoint: https://pager.example.com/hook
  eventPattern: {eventType: [call.abandoned]}
  inputTransformer:
    inputPathsMap: {wait: $.metrics.waitSeconds}
    inputTemplate: '"abandoned after <wait> s"'
- name: CRM
  endpoint: https://crm.example.com/hook
  eventPattern: {eventType: [{prefix: call.}]}
  inputPath: $.agent
- name: Billing
  endpoint: https://billing.example.com/hook
  eventPattern: {eventType: [invoice.paid]}
"""


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_pattern_match_no_match_and_invalid_exit_codes(tmp_path: Path) -> None:
    """Exit 0 when the event matches, 1 when not, 2 for an invalid pattern or event."""
    event = _write(tmp_path, "event.json", json.dumps(ABANDONED))
    pattern = _write(tmp_path, "pattern.json", PATTERN)
    matched = runner.invoke(app, ["match", "--pattern", pattern, event])
    assert (matched.exit_code, matched.stderr.strip()) == (0, "match")
    other = _write(tmp_path, "other.json", json.dumps({**ABANDONED, "metrics": {"waitSeconds": 5}}))
    missed = runner.invoke(app, ["match", "--pattern", pattern, other, "-o", "json"])
    assert missed.exit_code == 1
    assert json.loads(missed.stdout) == {"match": False}
    invalid = runner.invoke(app, ["match", "--pattern", '{"a": [{"numeric": ["<", 1, ">", 0]}]}', event])
    assert invalid.exit_code == 2
    assert "the lower bound must come before the upper bound" in invalid.stderr
    not_an_event = _write(tmp_path, "bad.jsonl", '{"a": 1}\n[1]\n')
    assert runner.invoke(app, ["match", "--pattern", pattern, not_an_event]).exit_code == 2
    assert runner.invoke(app, ["match", event]).exit_code == 2  # neither --pattern nor -f
    assert runner.invoke(app, ["match", "--pattern", pattern, str(tmp_path / "missing.json")]).exit_code == 2


def test_pattern_over_a_jsonl_stream_from_stdin(tmp_path: Path) -> None:
    """Each line is one event; exit 0 when any matched; JSON lists every line's verdict."""
    lines = [json.dumps(ABANDONED), "", json.dumps({"eventType": "call.answered"})]
    result = runner.invoke(app, ["match", "--pattern", PATTERN, "-", "-o", "json"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"line": 1, "event": "e1", "match": True},
        {"line": 3, "event": "", "match": False},
    ]
    table = runner.invoke(app, ["match", "--pattern", PATTERN, "-"], input="\n".join(lines) + "\n")
    assert "1 of 2 events matched" in table.stderr


def test_targets_file_shows_who_receives_what(tmp_path: Path) -> None:
    """-f: the targets an event reaches and each one's body after its transformer, without sending."""
    targets = _write(tmp_path, "targets.yaml", TARGETS)
    event = _write(tmp_path, "event.json", json.dumps(ABANDONED))
    result = runner.invoke(app, ["match", "-f", targets, event, "-o", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["matched"] == ["CRM", "Pager"]
    assert report["deliveries"] == [
        {"target": "CRM", "contentType": "application/json", "body": {"name": "Ana"}},
        {"target": "Pager", "contentType": "text/plain; charset=utf-8", "body": "abandoned after 80 s"},
    ]
    table = runner.invoke(app, ["match", "-f", targets, event])
    assert "abandoned after 80 s" in table.stdout
    assert "1 of 1 events reach a target" in table.stderr


def test_targets_file_with_no_target_reached_exits_1(tmp_path: Path) -> None:
    """An event no target wants: exit 1 and an explicit row."""
    targets = _write(tmp_path, "targets.yaml", TARGETS)
    result = runner.invoke(app, ["match", "-f", targets, "-"], input=json.dumps({"eventType": "email.received"}))
    assert result.exit_code == 1
    assert "(no target)" in result.stdout


def test_an_invalid_targets_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    """A bad transformer in the file is reported with its line and wire path."""
    bad = """\
- name: Pager
  endpoint: https://pager.example.com/hook
  inputTransformer:
    inputPathsMap: {wait: $.metrics.waitSeconds}
    inputTemplate: '{"t": <nope>}'
"""
    targets = _write(tmp_path, "targets.yaml", bad)
    event = _write(tmp_path, "event.json", json.dumps(ABANDONED))
    result = runner.invoke(app, ["match", "-f", targets, event])
    assert result.exit_code == 2
    assert "[0].inputTransformer.inputTemplate" in result.stderr
    assert "<nope> is not a variable" in result.stderr


def test_a_misspelt_match_type_gets_did_you_mean(tmp_path: Path) -> None:
    """`cxeb match --pattern` with `anything-bt` exits 2 and proposes `anything-but`."""
    event = _write(tmp_path, "event.json", json.dumps(ABANDONED))
    result = runner.invoke(app, ["match", "--pattern", '{"eventType": [{"anything-bt": "x"}]}', event])
    assert result.exit_code == 2
    assert "unrecognized match type 'anything-bt'; did you mean 'anything-but'?" in result.stderr
