"""A newcomer's mistakes get a pointer, not retries and a puzzle: settings errors, refused connections, no --yes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.main import get_command
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app

from ..ports import free_port


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets reach the command (a developer's CXONE_* must not leak in)."""
    for name in list(os.environ):
        if name.startswith(("CXONE_", "CXEB_")):
            monkeypatch.delenv(name)


async def _invoke(args: list[str], env: dict[str, str]) -> Result:
    # The command runs its own event loop, so it runs in a thread while the sandbox keeps serving.
    return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


# -- CXONE_BASE_URL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "complaint"),
    [
        ("127.0.0.1:8780", "has no scheme; write http://127.0.0.1:8780"),
        ("http://127.0.0.1:8780/api/v2", "ends in /api/v2, which every route adds itself; use 'http://127.0.0.1:8780'"),
        ("http://127.0.0.1:8780/api/v2/", "ends in /api/v2"),
        ("ftp://example.com", "must start with http:// or https://"),
        ("http://:8780", "has no host"),
        ("http://example.com:99999", "invalid port"),
    ],
)
def test_a_malformed_base_url_is_a_settings_error(base_url: str, complaint: str) -> None:
    """A malformed CXONE_BASE_URL exits 2 at once, naming the variable and what is wrong, before any request."""
    env = {"CXONE_BASE_URL": base_url, "CXONE_CLIENT_ID": "c", "CXONE_CLIENT_SECRET": "s"}
    result = CliRunner().invoke(app, ["targets", "list"], env=env)
    assert result.exit_code == 2
    assert "CXONE_BASE_URL: " in result.stderr
    assert complaint in result.stderr
    assert "Value error" not in result.stderr


def test_a_malformed_router_url_is_a_settings_error() -> None:
    """CXEB_ROUTER_URL without a scheme is named with what is wrong, exit 2."""
    result = CliRunner().invoke(app, ["router", "status"], env={"CXEB_ROUTER_URL": "127.0.0.1:8790"})
    assert result.exit_code == 2
    assert "CXEB_ROUTER_URL: '127.0.0.1:8790' has no scheme" in result.stderr


async def test_https_against_a_plain_http_port_is_a_settings_error(sandbox: Any) -> None:
    """https:// against the sandbox's plain-HTTP port: exit 2 with the http:// URL to use, and no retries."""
    plain = sandbox.base_url
    env = {
        "CXONE_BASE_URL": plain.replace("http://", "https://"),
        "CXONE_CLIENT_ID": sandbox.client_id,
        "CXONE_CLIENT_SECRET": sandbox.client_secret,
    }
    result = await _invoke(["targets", "list"], env)
    assert result.exit_code == 2, result.output
    assert f"answered in plain HTTP, not TLS: use {plain} in CXONE_BASE_URL" in result.stderr
    assert "retrying" not in result.stderr


async def test_a_refused_connection_says_where_the_sandbox_was_expected() -> None:
    """Nothing listening on the loopback base URL: the error asks whether the sandbox runs there, and how to start it."""
    port = free_port()
    env = {
        "CXONE_BASE_URL": f"http://127.0.0.1:{port}",
        "CXONE_CLIENT_ID": "c",
        "CXONE_CLIENT_SECRET": "s",
        "CXONE_MAX_ATTEMPTS": "2",
        "CXONE_MAX_RETRY_WAIT_S": "0.05",
    }
    result = await _invoke(["targets", "list"], env)
    assert result.exit_code == 1
    assert f"is the sandbox running? `cxeb sandbox serve --port {port}` listens there" in result.stderr


def test_retry_warnings_and_the_final_error_name_the_same_request() -> None:
    """Each retry warning names the request that failed (the token request here), in the final error's words."""
    port = free_port()
    env = {
        "CXONE_BASE_URL": f"http://127.0.0.1:{port}",
        "CXONE_CLIENT_ID": "c",
        "CXONE_CLIENT_SECRET": "s",
        "CXONE_MAX_ATTEMPTS": "2",
        "CXONE_MAX_RETRY_WAIT_S": "10",
    }
    result = CliRunner().invoke(app, ["targets", "list"], env=env)
    assert result.exit_code == 1
    first_line = result.stderr.split("error: ", 1)[1].splitlines()[0]
    assert first_line.startswith(f"POST http://127.0.0.1:{port}/oauth/token got no answer")
    warnings = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert warnings
    assert all(f": {first_line}; retrying in" in line for line in warnings)


# -- nothing destructive without a yes ---------------------------------------------------------------------

TARGET = """\
name: {name}
endpoint: https://hooks.example.com/{name}
"""


def _sandbox_env(sandbox: Any) -> dict[str, str]:
    return {
        "CXONE_BASE_URL": sandbox.base_url,
        "CXONE_CLIENT_ID": sandbox.client_id,
        "CXONE_CLIENT_SECRET": sandbox.client_secret,
    }


async def test_targets_delete_without_yes_and_without_a_terminal_refuses(sandbox: Any, tmp_path: Path) -> None:
    """`targets delete` with no terminal to ask on and no --yes exits 2 naming --yes, and the target stays."""
    env = _sandbox_env(sandbox)
    path = tmp_path / "t.yaml"
    path.write_text(TARGET.format(name="keep-me"), encoding="utf-8")
    assert (await _invoke(["targets", "create", "-f", str(path)], env)).exit_code == 0
    refused = await _invoke(["targets", "delete", "keep-me"], env)
    assert refused.exit_code == 2
    assert "pass --yes to delete" in refused.stderr
    assert (await _invoke(["targets", "get", "keep-me"], env)).exit_code == 0


async def test_apply_prune_without_yes_and_without_a_terminal_refuses(sandbox: Any, tmp_path: Path) -> None:
    """`apply --prune` whose plan deletes exits 2 naming --yes without a terminal; with --yes it deletes."""
    env = _sandbox_env(sandbox)
    both = tmp_path / "both.yaml"
    both.write_text(
        "- " + TARGET.format(name="a").replace("\n", "\n  ") + "\n- " + TARGET.format(name="b").replace("\n", "\n  ")
    )
    assert (await _invoke(["apply", "-f", str(both)], env)).exit_code == 0  # creates only: no question
    only_a = tmp_path / "a.yaml"
    only_a.write_text(TARGET.format(name="a"), encoding="utf-8")
    refused = await _invoke(["apply", "-f", str(only_a), "--prune"], env)
    assert refused.exit_code == 2
    assert "the plan deletes 1 target(s)" in refused.stderr
    assert "pass --yes to delete" in refused.stderr
    assert (await _invoke(["targets", "get", "b"], env)).exit_code == 0
    applied = await _invoke(["apply", "-f", str(only_a), "--prune", "--yes"], env)
    assert applied.exit_code == 0, applied.output
    assert (await _invoke(["targets", "get", "b"], env)).exit_code == 1


def test_dlq_purge_without_yes_and_without_a_terminal_refuses() -> None:
    """`router dlq purge` without --yes and a terminal exits 2 before it contacts any router."""
    port = free_port()
    result = CliRunner().invoke(app, ["router", "dlq", "purge", "--url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert "not purging ALL dead letters: no terminal to ask on; pass --yes to delete" in result.stderr


# -- consistency a user notices ----------------------------------------------------------------------------


def _all_commands() -> list[tuple[str, Any]]:
    """Every (path, click command) of the app, groups included."""
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        found.append((prefix, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{prefix} {name}", sub)

    walk("cxeb", get_command(app))
    return found


def test_dash_o_means_output_everywhere() -> None:
    """Every command that has -o uses it for --output (import writes with --out, and has no -o)."""
    for path, command in _all_commands():
        for param in command.params:
            if "-o" in getattr(param, "opts", []):
                assert "--output" in param.opts, f"{path}: -o is {param.opts}"
    import_help = CliRunner().invoke(app, ["import", "--help"]).stdout
    assert "--out <path>" in import_help


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["router", "status", "--help"], "[env var: CXEB_ROUTER_URL; default: (http://127.0.0.1:8790)]"),
        (["router", "send", "--help"], "[env var: CXEB_INGEST_KEY]"),
        (["router", "serve", "--help"], "[env var: CXEB_AUDIT_LOG; default: target_audit.log]"),
        (["targets", "delete", "--help"], "[env var: CXEB_AUDIT_LOG]"),
        (["sandbox", "serve", "--help"], "[default: 8780]"),
    ],
)
def test_help_shows_each_options_environment_variable_and_default(args: list[str], shown: str) -> None:
    """Help texts keep their [env var: ...] and [default: ...] notes (rich markup once swallowed them)."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0
    assert shown in " ".join(result.stdout.split())  # as one line, however the help was wrapped


def test_flags_are_shown_without_value_placeholders() -> None:
    """A flag such as --yes or --version is listed bare, never as `--yes <bool>`."""
    for args in (
        ["--help"],
        ["targets", "delete", "--help"],
        ["apply", "--help"],
        ["router", "dlq", "purge", "--help"],
    ):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        assert "<bool>" not in result.stdout
        assert "BOOLEAN" not in result.stdout


PATTERNED = """\
- name: {name}
  endpoint: https://hooks.example.com/{name}
  eventPattern:
    eventType: [{event_type}]
"""


async def test_plan_lists_only_what_changes_and_diffs_patterns_as_indented_json(sandbox: Any, tmp_path: Path) -> None:
    """plan hides unchanged targets unless --all, diffs a pattern line by line (indented JSON), keeps whole ids."""
    env = _sandbox_env(sandbox)
    path = tmp_path / "t.yaml"
    path.write_text(
        PATTERNED.format(name="stays", event_type="call.answered") + PATTERNED.format(name="moves", event_type="a")
    )
    assert (await _invoke(["apply", "-f", str(path)], env)).exit_code == 0
    path.write_text(
        PATTERNED.format(name="stays", event_type="call.answered") + PATTERNED.format(name="moves", event_type="b")
    )
    plan = await asyncio.to_thread(CliRunner().invoke, app, ["plan", "-f", str(path)], env={**env, "COLUMNS": "80"})
    assert plan.exit_code == 2, plan.output
    assert "stays" not in plan.stdout
    target_line = next(line for line in plan.stdout.splitlines() if line.startswith("~ update moves"))
    assert "(tgt" in target_line  # the whole id, on the target's line
    assert target_line.endswith(")")
    assert '    eventPattern:\n       {\n         "eventType": [\n      -    "a"\n      +    "b"\n' in plan.stdout
    assert "1 unchanged (--all shows them)" in plan.stdout
    everything = await _invoke(["plan", "-f", str(path), "--all"], env)
    assert "  unchanged stays" in everything.stdout


async def test_targets_get_json_feeds_targets_update_unchanged(sandbox: Any, tmp_path: Path) -> None:
    """`targets get -o json`, edited, is a valid `targets update -f`: server fields ignored, the secret kept."""
    env = {**_sandbox_env(sandbox), "TOKEN": "the-bearer-token-0123"}
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: rt\nendpoint: https://hooks.example.com/rt\nauthentication:\n  type: bearer\n  value: ${env:TOKEN}\n"
        "eventPattern:\n  eventType: [a]\n"
    )
    assert (await _invoke(["targets", "create", "-f", str(path)], env)).exit_code == 0
    got = await _invoke(["targets", "get", "rt", "-o", "json"], env)
    before = json.loads(got.stdout)
    edited = tmp_path / "rt.json"
    edited.write_text(got.stdout.replace('"a"', '"b"'))
    updated = await _invoke(["targets", "update", "rt", "-f", str(edited), "-o", "json"], env)
    assert updated.exit_code == 0, updated.output
    assert "set by the server; ignored" in updated.stderr
    assert "the current secret is kept" in updated.stderr
    after = json.loads(updated.stdout)
    assert after["eventPattern"] == {"eventType": ["b"]}
    assert after["authentication"]["valueFingerprint"] == before["authentication"]["valueFingerprint"]
    assert "the-bearer-token" not in updated.output


async def test_a_fingerprint_that_is_not_the_current_secrets_is_refused(sandbox: Any, tmp_path: Path) -> None:
    """An edited fingerprint cannot stand for a secret: update exits 2 and says to write a reference."""
    env = {**_sandbox_env(sandbox), "TOKEN": "the-bearer-token-0123"}
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: fp\nendpoint: https://hooks.example.com/fp\nauthentication:\n  type: bearer\n  value: ${env:TOKEN}\n"
    )
    assert (await _invoke(["targets", "create", "-f", str(path)], env)).exit_code == 0
    data = json.loads((await _invoke(["targets", "get", "fp", "-o", "json"], env)).stdout)
    data["authentication"]["valueFingerprint"] = "sha256:0000000000000000"
    edited = tmp_path / "fp.json"
    edited.write_text(json.dumps(data))
    refused = await _invoke(["targets", "update", "fp", "-f", str(edited)], env)
    assert refused.exit_code == 2
    assert "not the current secret's" in refused.stderr
