"""Profiles: two tenants of a real sandbox in one user config file, chosen by --profile or CXEB_PROFILE."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.config import RouterSettings, Settings, read_settings
from cxone_eventbridge.profiles import PROFILE_KEYS, default_path, load_profiles
from cxone_eventbridge.sandbox.config import SandboxClient

TARGET = """\
name: tenant-a-hook
endpoint: https://hooks.example.com/a
"""
B_SECRET_LITERAL = "tenant-b-literal-secret-never-printed"


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def tenants(sandbox: Any, tmp_path: Path) -> dict[str, Any]:
    """Two tenants on one sandbox (client a from the fixture, client b registered here) and a config file."""
    b = SandboxClient(client_id=f"tenant-b-{secrets.token_hex(4)}", client_secret=B_SECRET_LITERAL)
    sandbox.state.clients.register(b)
    router_url = f"http://127.0.0.1:{_closed_port()}"
    config = tmp_path / "xdg" / "cxeb" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[profiles.a]\nbase-url = "{sandbox.base_url}"\nclient-id = "{sandbox.client_id}"\n'
        'client-secret = "${env:TENANT_A_SECRET}"\n\n'
        f'[profiles.b]\nbase-url = "{sandbox.base_url}"\nclient-id = "{b.client_id}"\n'
        f'client-secret = "{B_SECRET_LITERAL}"\nrouter-url = "{router_url}"\n'
        'ingest-key = "${env:TENANT_B_INGEST_KEY}"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)
    (tmp_path / "t.yaml").write_text(TARGET, encoding="utf-8")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "TENANT_A_SECRET": sandbox.client_secret}
    return {"sandbox": sandbox, "config": config, "env": env, "targets": tmp_path / "t.yaml", "router_url": router_url}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _names(result: Any) -> list[str]:
    assert result.exit_code == 0, result.output
    return [target["name"] for target in json.loads(result.stdout)]


def test_two_profiles_are_two_tenants(tenants: dict[str, Any]) -> None:
    """A target created with --profile a is in a's tenant only; CXEB_PROFILE chooses too, the flag wins."""
    env = tenants["env"]
    created = CliRunner().invoke(app, ["--profile", "a", "targets", "create", "-f", str(tenants["targets"])], env=env)
    assert created.exit_code == 0, created.output
    listing = ["targets", "list", "-o", "json"]
    assert _names(CliRunner().invoke(app, ["--profile", "a", *listing], env=env)) == ["tenant-a-hook"]
    assert _names(CliRunner().invoke(app, ["--profile", "b", *listing], env=env)) == []
    assert _names(CliRunner().invoke(app, listing, env={**env, "CXEB_PROFILE": "b"})) == []
    assert _names(CliRunner().invoke(app, ["--profile", "a", *listing], env={**env, "CXEB_PROFILE": "b"})) == [
        "tenant-a-hook"
    ]


def test_environment_variables_beat_the_profile(tenants: dict[str, Any]) -> None:
    """CXONE_CLIENT_ID/SECRET set in the environment are used over profile b's (flags > env > profile)."""
    env = tenants["env"]
    sandbox = tenants["sandbox"]
    CliRunner().invoke(app, ["--profile", "a", "targets", "create", "-f", str(tenants["targets"])], env=env)
    tenant_a = {"CXONE_CLIENT_ID": sandbox.client_id, "CXONE_CLIENT_SECRET": sandbox.client_secret}
    result = CliRunner().invoke(app, ["--profile", "b", "targets", "list", "-o", "json"], env={**env, **tenant_a})
    assert _names(result) == ["tenant-a-hook"]


def test_unknown_profile_names_the_known_ones(tenants: dict[str, Any]) -> None:
    """--profile c exits 2 listing a and b; without a config file it says where it looked."""
    result = CliRunner().invoke(app, ["--profile", "c", "targets", "list"], env=tenants["env"])
    assert result.exit_code == 2
    assert "unknown profile 'c'" in result.output
    assert "known profiles: a, b" in result.output
    missing = CliRunner().invoke(app, ["--profile", "a", "targets", "list"], env={"XDG_CONFIG_HOME": "/nonexistent"})
    assert missing.exit_code == 2
    assert "no user config file at /nonexistent/cxeb/config.toml" in missing.output


def test_profiles_list_never_prints_secrets(tenants: dict[str, Any]) -> None:
    """The list shows references and "(plain text)", never a secret's value, in table and JSON."""
    env = {**tenants["env"], "CXEB_PROFILE": "b"}
    table = CliRunner().invoke(app, ["profiles", "list"], env=env)
    assert table.exit_code == 0, table.output
    assert "${env:TENANT_A_SECRET}" in table.output
    assert "b (chosen)" in table.output
    as_json = CliRunner().invoke(app, ["profiles", "list", "-o", "json"], env=env)
    listed = {item["name"]: item for item in json.loads(as_json.stdout)}
    assert listed["b"]["client-secret"] == "(plain text)"
    assert listed["b"]["chosen"] is True
    assert listed["a"]["client-id"] == tenants["sandbox"].client_id
    for output in (table.output, as_json.output):
        assert B_SECRET_LITERAL not in output
        assert tenants["sandbox"].client_secret not in output


def test_a_readable_file_with_a_literal_secret_is_warned_about(tenants: dict[str, Any]) -> None:
    """Mode 644 with profile b's literal secret: a warning naming the key and chmod 600; mode 600: none."""
    env = tenants["env"]
    quiet = CliRunner().invoke(app, ["--profile", "b", "targets", "list", "-o", "json"], env=env)
    assert "plain text" not in quiet.stderr
    tenants["config"].chmod(0o644)
    warned = CliRunner().invoke(app, ["--profile", "b", "targets", "list", "-o", "json"], env=env)
    assert warned.exit_code == 0, warned.output
    assert "holds a secret in plain text (profiles.b.client-secret)" in warned.stderr
    assert "chmod 600" in warned.stderr
    assert B_SECRET_LITERAL not in warned.output


def test_router_commands_take_the_profile_router_url_and_ingest_key(tenants: dict[str, Any]) -> None:
    """Profile b's router URL is where `router status` goes; its ingest key reference must resolve."""
    env = tenants["env"]
    unset = CliRunner().invoke(app, ["--profile", "b", "router", "status"], env=env)
    assert unset.exit_code == 2
    assert "profiles.b.ingest-key: ${env:TENANT_B_INGEST_KEY} names an environment variable that is not set" in (
        " ".join(unset.output.split())
    )
    result = CliRunner().invoke(
        app, ["--profile", "b", "router", "status"], env={**env, "TENANT_B_INGEST_KEY": "k" * 24}
    )
    assert result.exit_code == 1
    assert tenants["router_url"] in result.output


def test_bad_profile_values_and_keys_name_file_and_line(tenants: dict[str, Any]) -> None:
    """A misspelt key gets "did you mean"; a bad value names the file, line and profile key."""
    config: Path = tenants["config"]
    config.write_text(
        config.read_text() + '\n[profiles.c]\nbase_url = "http://x"\n\n[profiles.d]\nbase-url = "127.0.0.1:8780"\n'
    )
    env = tenants["env"]
    result = CliRunner().invoke(app, ["--profile", "a", "targets", "list"], env=env)
    assert result.exit_code == 2
    assert f"{config}:14: profiles.c.base_url is not a known key; did you mean 'base-url'?" in result.output
    config.write_text(config.read_text().replace('base_url = "http://x"', 'base-url = "http://x"'))
    bad = CliRunner().invoke(app, ["--profile", "d", "targets", "list"], env=env)
    assert bad.exit_code == 2
    assert f"{config}:17: profiles.d.base-url: '127.0.0.1:8780' has no scheme" in " ".join(bad.output.split())


def test_profile_keys_are_every_setting_and_the_file_is_where_xdg_says() -> None:
    """Every CXONE_/CXEB_ setting is a kebab-case key; XDG_CONFIG_HOME (absolute) or ~/.config holds the file."""
    assert {"base-url", "client-id", "client-secret", "router-url", "ingest-key", "token-url"} <= set(PROFILE_KEYS)
    assert default_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/cxeb/config.toml")
    assert default_path({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}) == Path("/h/.config/cxeb/config.toml")
    assert default_path({"HOME": "/h"}) == Path("/h/.config/cxeb/config.toml")


def _config(tmp_path: Path, text: str, mode: int = 0o600) -> dict[str, str]:
    """A user config file holding ``text``; the environment that points at it."""
    config = tmp_path / "xdg" / "cxeb" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text, encoding="utf-8")
    config.chmod(mode)
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}


WRONG_TYPES = [
    ("timeout-s = true", "profiles.a.timeout-s: must be a number, not a boolean"),
    ("max-attempts = 2.5", "profiles.a.max-attempts: must be an integer, not a float"),
    ("max-attempts = false", "profiles.a.max-attempts: must be an integer, not a boolean"),
    ("client-secret = 12345678", "profiles.a.client-secret: must be a string, not an integer"),
    ("token-url = 5", "profiles.a.token-url: must be a string, not an integer"),
    ('client-secret = "${env:A_SECRET"', "profiles.a.client-secret: malformed secret reference"),
]


@pytest.mark.parametrize(("line", "message"), WRONG_TYPES, ids=[line for line, _ in WRONG_TYPES])
def test_a_value_of_the_wrong_type_names_file_line_and_key(tmp_path: Path, line: str, message: str) -> None:
    """TOML values are typed: `true` is no timeout, 12345678 no secret; exit 2 on use and on `profiles list`."""
    env = _config(tmp_path, f'[profiles.a]\nbase-url = "http://127.0.0.1:9"\n{line}\n')
    config = tmp_path / "xdg" / "cxeb" / "config.toml"
    for args in (["--profile", "a", "targets", "list"], ["profiles", "list"]):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 2, (args, result.output)
        assert f"{config}:3: {message}" in " ".join(result.output.split()), (args, result.output)
        assert "12345678" not in result.output


def test_profile_after_the_command_is_the_same_choice(tenants: dict[str, Any]) -> None:
    """As aws takes it: `cxeb targets list --profile a` is `cxeb --profile a targets list`; it beats CXEB_PROFILE
    and an earlier --profile, and the commands' help does not change."""
    env = tenants["env"]
    created = CliRunner().invoke(app, ["targets", "create", "-f", str(tenants["targets"]), "--profile", "a"], env=env)
    assert created.exit_code == 0, created.output
    listing = ["targets", "list", "-o", "json"]
    assert _names(CliRunner().invoke(app, [*listing, "--profile", "a"], env=env)) == ["tenant-a-hook"]
    assert _names(CliRunner().invoke(app, [*listing, "--profile=b"], env=env)) == []
    assert _names(CliRunner().invoke(app, [*listing, "--profile", "a"], env={**env, "CXEB_PROFILE": "b"})) == [
        "tenant-a-hook"
    ]
    assert _names(CliRunner().invoke(app, ["--profile", "b", *listing, "--profile", "a"], env=env)) == ["tenant-a-hook"]
    listed = CliRunner().invoke(app, ["profiles", "list", "--profile", "b"], env=env)
    assert "b (chosen)" in listed.output
    assert "--profile" not in CliRunner().invoke(app, ["targets", "list", "--help"]).output


def test_an_unknown_profile_says_where_the_name_came_from(tmp_path: Path) -> None:
    """CXEB_PROFILE=c names the variable (a user may not remember exporting it); --profile c names the flag."""
    env = _config(tmp_path, '[profiles.a]\nbase-url = "http://127.0.0.1:9"\n')
    from_env = CliRunner().invoke(app, ["targets", "list"], env={**env, "CXEB_PROFILE": "c"})
    assert from_env.exit_code == 2
    assert "CXEB_PROFILE=c: unknown profile 'c'" in from_env.output
    assert "known profiles: a" in from_env.output
    from_flag = CliRunner().invoke(app, ["targets", "list", "--profile", "c"], env=env)
    assert from_flag.exit_code == 2
    assert "--profile c: unknown profile 'c'" in from_flag.output
    no_file = CliRunner().invoke(app, ["targets", "list"], env={"XDG_CONFIG_HOME": str(tmp_path), "CXEB_PROFILE": "c"})
    assert no_file.exit_code == 2
    assert f"CXEB_PROFILE=c: there is no user config file at {tmp_path}/cxeb/config.toml" in no_file.output


def test_profile_values_sit_between_the_environment_and_the_defaults(tmp_path: Path) -> None:
    """Per setting, string, int and float alike: the profile beats the default, the environment beats the profile."""
    env = _config(
        tmp_path,
        '[profiles.a]\nbase-url = "http://127.0.0.1:9"\nmax-attempts = 2\ntimeout-s = 5\n'
        'router-url = "http://127.0.0.1:1234"\n',
    )
    profile = load_profiles(default_path(env)).get("a")
    with pytest.MonkeyPatch.context() as patch:
        settings = read_settings(Settings, profile=profile)
        assert (settings.base_url, settings.max_attempts, settings.timeout_s) == ("http://127.0.0.1:9", 2, 5.0)
        assert settings.max_retry_wait_s == 60.0  # not in the profile: the default
        assert read_settings(RouterSettings, profile=profile).router_url == "http://127.0.0.1:1234"
        patch.setenv("CXONE_BASE_URL", "http://127.0.0.1:10")
        patch.setenv("CXONE_MAX_ATTEMPTS", "3")
        patch.setenv("CXONE_TIMEOUT_S", "7.5")
        patch.setenv("CXEB_ROUTER_URL", "http://127.0.0.1:4321")
        settings = read_settings(Settings, profile=profile)
        assert (settings.base_url, settings.max_attempts, settings.timeout_s) == ("http://127.0.0.1:10", 3, 7.5)
        assert read_settings(RouterSettings, profile=profile).router_url == "http://127.0.0.1:4321"


PLAIN_SECRET = "profile-plain-client-secret-0123456789"
PLAIN_KEY = "profile-plain-ingest-key-0123456789"


def test_no_output_or_debug_log_shows_a_profile_secret(tmp_path: Path) -> None:
    """Literal secrets of a profile, used by commands that fail and succeed with -vv debug logs (text and JSON):
    neither value appears in any output, nor in `profiles list`, nor in a bad-value error."""
    closed = _closed_port()
    env = _config(
        tmp_path,
        f'[profiles.a]\nbase-url = "http://127.0.0.1:{closed}"\nclient-id = "c"\n'
        f'client-secret = "{PLAIN_SECRET}"\nrouter-url = "http://127.0.0.1:{closed}"\ningest-key = "{PLAIN_KEY}"\n'
        f'[profiles.bad]\nclient-secret = "{PLAIN_SECRET}"\nmax-attempts = 99\n',
        mode=0o644,
    )
    runs = [
        ["-vv", "--profile", "a", "targets", "list"],
        ["-vv", "--log-format", "json", "--profile", "a", "targets", "list"],
        ["-vv", "--profile", "a", "router", "status"],
        ["-vv", "router", "send", "--profile", "a", "-"],
        ["profiles", "list"],
        ["profiles", "list", "-o", "json"],
        ["-vv", "--profile", "bad", "targets", "list"],
    ]
    for args in runs:
        result = CliRunner().invoke(
            app, args, env={**env, "CXONE_MAX_ATTEMPTS": "1"}, input='{"id": "e-1", "eventType": "x"}\n'
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert PLAIN_SECRET not in result.output, args
        assert PLAIN_KEY not in result.output, args
    bad = CliRunner().invoke(app, ["--profile", "bad", "targets", "list"], env=env)
    assert "profiles.bad.max-attempts: Input should be less than or equal to 10" in " ".join(bad.output.split())


def test_a_profile_file_that_cannot_be_read_says_why_in_words(tmp_path: Path) -> None:
    """A directory where the file should be, or a file that is not UTF-8: exit 2, the path and the reason, once."""
    config = tmp_path / "xdg" / "cxeb" / "config.toml"
    config.mkdir(parents=True)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    for args in (["--profile", "a", "targets", "list"], ["profiles", "list"]):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 2
        assert result.output == f"error: {config}: is a directory, not a file\n"
    config.rmdir()
    config.write_bytes(b'[profiles.a]\nclient-id = "\xff"\n')
    result = CliRunner().invoke(app, ["profiles", "list"], env=env)
    assert result.exit_code == 2
    assert result.output == f"error: {config}: not UTF-8 text (line 2)\n"


def test_hints_name_the_profile_key_that_set_the_url_and_warnings_come_once(tmp_path: Path) -> None:
    """Nothing answers at a profile's base URL: the hint names `base-url of profile a`, not CXONE_BASE_URL (which
    would send the user looking for a variable they never set); the file's warning is printed once per run."""
    closed = _closed_port()
    env = _config(
        tmp_path,
        f'[profiles.a]\nbase-url = "http://127.0.0.1:{closed}"\nclient-id = "c"\nclient-secret = "plain-text-1"\n',
        mode=0o644,
    )
    result = CliRunner().invoke(app, ["--profile", "a", "targets", "list"], env={**env, "CXONE_MAX_ATTEMPTS": "1"})
    assert result.exit_code == 1
    assert f"nothing answered at http://127.0.0.1:{closed} (base-url of profile a)" in result.output
    assert result.output.count("holds a secret in plain text") == 1
    exported = {**env, "CXONE_MAX_ATTEMPTS": "1", "CXONE_BASE_URL": f"http://127.0.0.1:{closed}"}
    from_env = CliRunner().invoke(app, ["--profile", "a", "targets", "list"], env=exported)
    assert f"nothing answered at http://127.0.0.1:{closed} (CXONE_BASE_URL)" in from_env.output


def test_a_profile_without_a_base_url_says_so(tmp_path: Path) -> None:
    """A profile that sets only a router URL, used for a control-plane command: the message names the profile."""
    env = _config(tmp_path, '[profiles.r]\nrouter-url = "http://127.0.0.1:9"\n')
    result = CliRunner().invoke(app, ["targets", "list", "--profile", "r"], env=env)
    assert result.exit_code == 2
    assert "profile r sets no base-url (nor discovery-url), and CXONE_BASE_URL is not set" in result.output
