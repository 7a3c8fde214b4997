"""`cxeb router serve --config FILE` and `cxeb router config`: every serve option in a TOML file, flags first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.cli.router_config import audit_log_off, example_file, file_keys, load_serve_file, render_file
from cxone_eventbridge.config import url_without_password
from cxone_eventbridge.exceptions import ConfigurationError

from ..ports import free_port
from ..router_serve import start_router

TARGETS = """\
- name: local
  endpoint: https://127.0.0.1:9/hook
"""


pytestmark = pytest.mark.usefixtures("clean_environment")


def _serve_command() -> Any:
    return typer.main.get_command(app).commands["router"].commands["serve"]


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _sample(param: Any) -> Any:
    """A valid file value for any serve option: its default, else one of its type."""
    if param.default not in (None, [], ()):
        return param.default if isinstance(param.default, bool | int | float) else str(param.default)
    if param.multiple:
        return ["127.0.0.0/8"]
    return "x.pem"


def test_every_serve_option_is_accepted_in_the_file(tmp_path: Path) -> None:
    """The keys come from serve's own options: a file setting every one loads, each to its parameter."""
    serve = _serve_command()
    keys = file_keys(serve)
    long_names = {opt[2:] for param in serve.params for opt in param.opts[:1] if opt.startswith("--")}
    assert set(keys) == long_names - {"config", "help"}
    assert {"drain-deadline", "allow-private", "ingest-key", "no-audit-log", "max-connections"} <= set(keys)
    lines = [f"{key} = {render_value}" for key, render_value in _rendered_samples(keys).items()]
    path = _write(tmp_path / "router.toml", "\n".join(lines) + "\n")
    values = load_serve_file(path, serve, environ={})
    assert set(values) == {param.name for param in keys.values()}


def _rendered_samples(keys: dict[str, Any]) -> dict[str, str]:
    text = render_file(_serve_command(), {key: _sample(param) for key, param in keys.items()})
    return dict(re.findall(r"^([a-z-]+) = (.+)$", text, re.MULTILINE))


def test_example_loads_back_unchanged(tmp_path: Path) -> None:
    """`router config --example` prints every option; loaded and written again it is the same text."""
    result = CliRunner().invoke(app, ["router", "config", "--example"])
    assert result.exit_code == 0, result.output
    example = result.stdout
    serve = _serve_command()
    assert example == example_file(serve)
    loaded = tomllib.loads(example)
    assert render_file(serve, loaded) == example
    for key in file_keys(serve):
        assert re.search(rf"^(# )?{key} = ", example, re.MULTILINE), key
    assert loaded["port"] == 8790
    assert loaded["drain-deadline"] == 30.0
    assert '# ingest-key = "${env:CXEB_INGEST_KEY}"' in example
    path = _write(tmp_path / "router.toml", example)
    checked = CliRunner().invoke(app, ["router", "config", "--check", str(path)])
    assert checked.exit_code == 0, checked.output
    assert f"{len(loaded)} option(s) set, all valid" in checked.output


def test_bad_files_name_file_line_and_key_with_did_you_mean(tmp_path: Path) -> None:
    """Every problem at once: the file, line and key, "did you mean" for a misspelt key, exit 2."""
    path = _write(
        tmp_path / "router.toml",
        'targets = "t.yaml"\nport = 70000\ndrain_deadline = 3\nallow-private = ["10.0.0.0/8", "nope"]\n'
        'ingest-key = "${env:CXEB_TEST_UNSET_KEY}"\nmax-connections = "many"\n[serve]\nhost = "0.0.0.0"\n',
    )
    result = CliRunner().invoke(app, ["router", "serve", "--config", str(path)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert f"{path}:2: port:" in out
    assert f"{path}:3: drain_deadline is not a known key; did you mean 'drain-deadline'?" in out
    assert f"{path}:4: allow-private: 'nope' is not an IP network in CIDR form" in out
    assert f"{path}:5: ingest-key: ${{env:CXEB_TEST_UNSET_KEY}} names an environment variable that is not set" in out
    assert f"{path}:6: max-connections:" in out
    assert f"{path}:7: serve is not a known key" in out
    broken = _write(tmp_path / "broken.toml", "port = \n")
    result = CliRunner().invoke(app, ["router", "serve", "--config", str(broken)])
    assert result.exit_code == 2
    assert "not valid TOML" in result.output
    assert "line 1" in result.output


def test_flags_override_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's values are defaults: an environment variable beats them, a flag beats both."""
    _write(tmp_path / "t.yaml", TARGETS)
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "router.toml", 'targets = "t.yaml"\nworkers = 2\nqueue = "sqlite:///q.db"\n')
    result = CliRunner().invoke(app, ["router", "serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "--workers above 1 needs a PostgreSQL --queue" in result.output  # the file's workers and queue
    monkeypatch.setenv("CXEB_QUEUE_URL", "postgresql://nobody@127.0.0.1:9/none")
    result = CliRunner().invoke(app, ["router", "serve", "--config", str(path), "--port", "0"])
    assert result.exit_code == 2
    assert "--workers above 1 needs a fixed --port" in result.output  # the environment's queue won
    result = CliRunner().invoke(
        app, ["router", "serve", "--config", str(path), "--workers", "1", "--targets", "no.yaml"]
    )
    assert result.exit_code == 2
    assert "no.yaml" in result.output  # the flags won


def test_plain_text_ingest_key_in_a_readable_file_is_warned_about(tmp_path: Path) -> None:
    """As ssh does: a literal secret in a group/other-readable file draws a warning; mode 600 or a reference none."""
    text = 'ingest-key = "a-literal-ingest-key-value"\n'
    readable = _write(tmp_path / "open.toml", text, mode=0o644)
    result = CliRunner().invoke(app, ["router", "config", "--check", str(readable)])
    assert result.exit_code == 0
    assert "holds a secret in plain text (ingest-key)" in result.output
    assert "chmod 600" in result.output
    assert "a-literal-ingest-key-value" not in result.output
    private = _write(tmp_path / "private.toml", text, mode=0o600)
    assert "plain text" not in CliRunner().invoke(app, ["router", "config", "--check", str(private)]).output
    referenced = _write(tmp_path / "ref.toml", 'ingest-key = "${env:HOME}"\n', mode=0o644)
    assert "plain text" not in CliRunner().invoke(app, ["router", "config", "--check", str(referenced)]).output


def test_load_errors_are_configuration_errors(tmp_path: Path) -> None:
    """A missing file is one clear error naming it."""
    serve = _serve_command()
    with pytest.raises(ConfigurationError, match="no such file"):
        load_serve_file(tmp_path / "none.toml", serve)


def test_a_real_router_runs_from_its_config_file(tmp_path: Path) -> None:
    """`cxeb router serve --config router.toml` listens where the file says, with the file's ${env:} ingest key."""
    _write(tmp_path / "t.yaml", TARGETS)
    port = free_port()
    config = (
        f'targets = "t.yaml"\nport = {port}\ningest-key = "${{env:TEST_ROUTER_KEY}}"\n'
        'allow-private = ["127.0.0.0/8"]\nno-audit-log = true\ndrain-deadline = 1.0\n'
    )
    _write(tmp_path / "router.toml", config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CXEB_", "CXONE_"))}
    key = "config-file-ingest-key-0123456789"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cxone_eventbridge.cli.main import run; run()",
            "router",
            "serve",
            "--config",
            "router.toml",
        ],
        cwd=tmp_path,
        env={**env, "TEST_ROUTER_KEY": key},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = ""
        deadline = time.monotonic() + 60  # a hang guard, not a speed assertion
        while "router listening on" not in banner and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            banner += line
        assert f"router listening on http://127.0.0.1:{port}" in banner, banner
        url = f"http://127.0.0.1:{port}/v1/events"
        event = {"id": "e-1", "type": "contact.created", "data": {}}
        assert httpx.post(url, json=event).status_code == 401
        accepted = httpx.post(url, json=event, headers={"Authorization": f"Bearer {key}"})
        assert accepted.status_code in {200, 202}, accepted.text
    finally:
        process.terminate()
        process.communicate(timeout=60)
    assert process.returncode == 0


BAD_VALUES = [
    ("port = 70000", "port: Input should be less than or equal to 65535"),
    ('port = "abc"', "port: must be an integer, not a string"),
    ("port = 8790.5", "port: must be an integer, not a float"),
    ("workers = true", "workers: must be an integer, not a boolean"),
    ('drain-deadline = "x"', "drain-deadline: must be a number, not a string"),
    ("drain-deadline = -1", "drain-deadline: Input should be greater than or equal to 0"),
    ('migrate = "yes"', "migrate: must be true or false, not a string"),
    ("otel = 1", "otel: must be true or false, not an integer"),
    ("host = 5", "host: must be a string, not an integer"),
    ('audit-log = ["a"]', "audit-log: must be a string, not an array"),
    ("allow-private = [1]", "allow-private: must be a list of strings, not an array holding an integer"),
    ('allow-private = ["nope"]', "allow-private: 'nope' is not an IP network in CIDR form"),
    ('ingest-key = "${env:CXEB_TEST_UNSET_KEY"', "ingest-key: malformed secret reference"),
]


@pytest.mark.parametrize(("line", "message"), BAD_VALUES, ids=[line for line, _ in BAD_VALUES])
def test_check_rejects_what_serve_rejects(tmp_path: Path, line: str, message: str) -> None:
    """`router config --check` and `router serve --config` report the same wrong value or type: FILE:LINE, exit 2."""
    path = _write(tmp_path / "router.toml", f'targets = "t.yaml"\n{line}\n')
    for args in (["router", "config", "--check", str(path)], ["router", "serve", "--config", str(path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"{path}:2: {message}" in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output


def test_a_reference_is_converted_as_a_typed_value_would_be(tmp_path: Path) -> None:
    """`port = "${env:PORT}"`: the variable's text goes through the option's conversion, as on the command line."""
    path = _write(tmp_path / "router.toml", 'port = "${env:ROUTER_TEST_PORT}"\n')
    good = CliRunner().invoke(app, ["router", "config", "--check", str(path)], env={"ROUTER_TEST_PORT": "8799"})
    assert good.exit_code == 0, good.output
    bad = CliRunner().invoke(app, ["router", "config", "--check", str(path)], env={"ROUTER_TEST_PORT": "high"})
    assert bad.exit_code == 2
    assert f"{path}:1: port: Input should be a valid integer" in bad.output


FILE = 'queue = "sqlite:///file.db"\nport = 8001\notel = true\nallow-private = ["10.0.0.0/8", "127.0.0.0/8"]\n'


def _resolved_options(path: Path, *flags: str) -> dict[str, Any]:
    """The values serve's own parsing gives its parameters for ``--config path flags``: what the command receives."""
    ctx = _serve_command().make_context("serve", ["--config", str(path), *flags])
    return {name: ctx.params[name] for name in ("queue", "port", "otel", "allow_private", "migrate")}


def test_precedence_flag_then_env_then_file_then_default_for_each_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A string (with its env var), an int, a flag and a repeatable CIDR list: the file beats the default, the
    environment beats the file, a flag beats both; a repeated flag replaces the file's list, it does not extend it."""
    path = _write(tmp_path / "router.toml", FILE)
    empty = _write(tmp_path / "empty.toml", "")
    assert _resolved_options(empty) == {
        "queue": None,
        "port": 8790,
        "otel": False,
        "allow_private": (),
        "migrate": False,
    }  # the defaults
    from_file = _resolved_options(path)
    assert from_file == {
        "queue": "sqlite:///file.db",
        "port": 8001,
        "otel": True,
        "allow_private": ["10.0.0.0/8", "127.0.0.0/8"],
        "migrate": False,
    }
    monkeypatch.setenv("CXEB_QUEUE_URL", "sqlite:///env.db")
    assert _resolved_options(path)["queue"] == "sqlite:///env.db"
    flags = ["--queue", "sqlite:///flag.db", "--port", "8002", "--migrate", "--allow-private", "192.168.0.0/16"]
    assert _resolved_options(path, *flags) == {
        "queue": "sqlite:///flag.db",
        "port": 8002,
        "otel": True,
        "allow_private": ["192.168.0.0/16"],
        "migrate": True,
    }
    # A switch the file turns on is turned off by its --no- form: the flag beats the file for booleans too.
    assert _resolved_options(path, "--no-otel")["otel"] is False


def _audit_log_off(path: Path, *flags: str) -> bool:
    ctx = _serve_command().make_context("serve", ["--config", str(path), *flags])
    return audit_log_off(ctx, ctx.params["no_audit_log"])


def test_an_audit_log_asked_for_undoes_a_files_no_audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`no-audit-log = true` in the file is undone by --audit-log PATH or CXEB_AUDIT_LOG (flags > env > file);
    --no-audit-log on the command line beats CXEB_AUDIT_LOG; both flags together are refused, naming them."""
    monkeypatch.delenv("CXEB_AUDIT_LOG", raising=False)
    off = _write(tmp_path / "off.toml", "no-audit-log = true\n")
    empty = _write(tmp_path / "empty.toml", "")
    assert _audit_log_off(empty) is False
    assert _audit_log_off(empty, "--no-audit-log") is True
    assert _audit_log_off(off) is True
    assert _audit_log_off(off, "--audit-log", str(tmp_path / "audit.jsonl")) is False
    monkeypatch.setenv("CXEB_AUDIT_LOG", str(tmp_path / "env-audit.jsonl"))
    assert _audit_log_off(off) is False
    assert _audit_log_off(empty, "--no-audit-log") is True
    with pytest.raises(ConfigurationError, match="--audit-log PATH or --no-audit-log, not both"):
        _audit_log_off(empty, "--no-audit-log", "--audit-log", "a.jsonl")
    result = CliRunner().invoke(
        app,
        ["router", "serve", "--config", str(off), "--no-audit-log", "--audit-log", "a.jsonl", "--targets", "t.yaml"],
    )
    assert result.exit_code == 2
    assert "not both" in result.output


DB_PASSWORD = "queue-password-never-printed"


async def test_a_queue_url_password_is_never_printed(tmp_path: Path, postgres_dsn: str, pg_schema: str) -> None:
    """A PostgreSQL queue URL with a password (from the file or a flag): `--check` and the router's banner show
    `user:***@host`, and the password appears in no output of either."""
    user_at = postgres_dsn.split("://", 1)[1].split("@", 1)[0]
    url = postgres_dsn.replace(f"{user_at}@", f"{user_at}:{DB_PASSWORD}@", 1) + f"?schema={pg_schema}"
    _write(tmp_path / "t.yaml", TARGETS)
    path = _write(tmp_path / "router.toml", f'queue = "{url}"\nmigrate = true\nno-audit-log = true\nport = 0\n')
    checked = CliRunner().invoke(app, ["router", "config", "--check", str(path)])
    assert checked.exit_code == 0, checked.output
    assert f"{user_at}:***@" in checked.output
    assert DB_PASSWORD not in checked.output
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CXEB_", "CXONE_"))}
    router = await start_router("--config", str(path), "--targets", "t.yaml", env=env, cwd=tmp_path)
    try:
        assert f"queue postgresql://{user_at}:***@" in router.log
    finally:
        assert await router.stop() == 0
    assert DB_PASSWORD not in router.log


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://cxeb:pw@db:5432/cxeb?schema=a", "postgresql://cxeb:***@db:5432/cxeb?schema=a"),
        ("postgresql://cxeb@db/cxeb?password=pw&schema=a", "postgresql://cxeb@db/cxeb?password=***&schema=a"),
        ("postgresql://cxeb@db/cxeb", "postgresql://cxeb@db/cxeb"),
        ("sqlite:///.cxeb/router/q.db", "sqlite:///.cxeb/router/q.db"),
        ("http://user:p%40ss@[::1]:8790/x", "http://user:***@[::1]:8790/x"),
    ],
)
def test_url_without_password(url: str, shown: str) -> None:
    """A password in a URL's user part or query is replaced by ***; everything else is kept as written."""
    assert url_without_password(url) == shown
