"""The README's Quickstart, run as written: every ``sh`` block of its section, line by line, in a fresh directory;
and the Configuration section's profiles file and router-file keys, as written.

What the harness adds, and nothing more:
- the default ports (8780 sandbox, 8743/8744 receivers, 8790 router) become free ports, in the blocks and in
  the copy of ``examples/`` the blocks read, so the test runs beside anything else on the machine;
- after a line that starts a server in the background (``... &``) it waits until the server says
  ``listening on``, as a reader waits for the banner before typing the next line;
- each line must exit as its comment says (``# exit 2: ...``), or 0; at the end every background server is
  stopped with SIGTERM.
Afterwards, whatever the walk-through created must be ignored by the repository's ``.gitignore``
(``.cxeb/`` holds a private key). A change to the README or to the commands it shows that breaks the walk-through breaks this test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..ports import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEFAULT_PORTS = (8780, 8743, 8744, 8790)
BACKGROUND = re.compile(r"^(?P<command>.*?)\s&\s*(?:#.*)?$")
EXPECTED_EXIT = re.compile(r"#\s*exit (?P<code>\d+)")


@dataclass(frozen=True)
class Line:
    """One command of the Quickstart, with where it is in the README and how it must end."""

    number: int
    text: str
    background: bool
    expected_exit: int


def quickstart_lines(readme: str) -> list[Line]:
    """The commands of every ``sh`` block in the README's ``## Quickstart`` section, in order."""
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    offset = readme[: readme.index("\n## Quickstart\n")].count("\n") + 2
    lines: list[Line] = []
    in_block = False
    for index, raw in enumerate(section.splitlines()):
        stripped = raw.strip()
        if stripped.startswith("```"):
            in_block = stripped == "```sh" if not in_block else False
            continue
        if not in_block or not stripped or stripped.startswith("#"):
            continue
        assert not stripped.endswith("\\"), "keep Quickstart commands on one line each"
        background = BACKGROUND.match(stripped)
        expected = EXPECTED_EXIT.search(stripped)
        lines.append(
            Line(
                number=offset + index,
                text=background.group("command") if background else stripped,
                background=background is not None,
                expected_exit=int(expected.group("code")) if expected else 0,
            )
        )
    return lines


def with_ports(text: str, ports: dict[int, int]) -> str:
    for default, port in ports.items():
        text = re.sub(rf"(?<![0-9]){default}(?![0-9])", str(port), text)
    return text


PRELUDE = r"""
set -u
__servers=()
__stop_servers() {
  for pid in "${__servers[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${__servers[@]}"; do wait "$pid" 2>/dev/null; done
}
trap __stop_servers EXIT
__started() {  # $1 log, $2 pid, $3 README line: wait for the banner, as a reader would
  for _ in $(seq 1 600); do
    if grep -q "listening on" "$1"; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "README line $3: the server exited before listening:" >&2; cat "$1" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "README line $3: no 'listening on' within 60 s:" >&2; cat "$1" >&2; exit 1
}
__check() {  # $1 exit code, $2 expected, $3 README line, $4 the command
  if [ "$1" -ne "$2" ]; then
    echo "README line $3 exited $1, expected $2: $4" >&2; exit 1
  fi
}
"""


def script_for(lines: list[Line], ports: dict[int, int]) -> str:
    parts = [PRELUDE]
    for n, line in enumerate(lines):
        command = with_ports(line.text, ports)
        echo = f"echo {shlex.quote(f'$ {command}')}"
        if line.background:
            log = f".server-{n}.log"
            parts.append(
                f"{echo}\n{command} > {log} 2>&1 &\n__servers+=($!)\n__started {log} $! {line.number}\ncat {log}"
            )
        else:
            parts.append(f"{echo}\n{command}\n__check $? {line.expected_exit} {line.number} {shlex.quote(command)}")
    return "\n".join(parts) + "\n"


def test_quickstart_blocks_are_found() -> None:
    """The extractor sees the Quickstart's commands, background servers and stated exit codes."""
    lines = quickstart_lines(README.read_text(encoding="utf-8"))
    texts = [line.text for line in lines]
    assert any(line.background and "cxeb sandbox serve" in line.text for line in lines)
    assert any(line.background and "cxeb router serve" in line.text for line in lines)
    assert any(line.expected_exit == 2 and line.text.startswith("cxeb plan") for line in lines)
    assert all("..." not in text for text in texts), "every command must run as written"


@pytest.mark.skipif(shutil.which("bash") is None, reason="the Quickstart is written for a POSIX shell")
def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    """Every Quickstart command succeeds (or exits as its comment says), in order, in a fresh directory."""
    lines = quickstart_lines(README.read_text(encoding="utf-8"))
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for path in (tmp_path / "examples").iterdir():
        if path.suffix in {".yaml", ".yml", ".json"}:
            path.write_text(with_ports(path.read_text(encoding="utf-8"), ports), encoding="utf-8")
    # `source .venv/bin/activate`, as after `make test`: the environment running this test.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CXONE_", "CXEB_", "DEMO_"))}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "80"
    result = subprocess.run(
        ["bash", "-c", script_for(lines, ports)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + "\n--- stderr ---\n" + result.stderr[-6000:]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    harness = (".venv", ".gitignore", "examples/", ".server-")
    created = [line[3:] for line in status.stdout.splitlines() if not line[3:].startswith(harness)]
    assert created == [], f"the Quickstart leaves files that .gitignore does not cover: {created}"


def _section(readme: str, heading: str) -> str:
    """The text under ``heading`` (``## X`` or ``### X``) up to the next heading of its level or above."""
    level = heading.split(" ", 1)[0]
    body = readme.split(f"\n{heading}\n", 1)[1]
    ends = [body.find(f"\n{'#' * n} ") for n in range(2, len(level) + 1)]
    return body[: min([end for end in ends if end >= 0], default=len(body))]


def _cxeb(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cxeb = str(Path(sys.executable).with_name("cxeb"))
    return subprocess.run([cxeb, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CXONE_", "CXEB_", "XDG_"))}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", **extra}


def test_readme_profiles_example_is_a_user_config_file_as_written(tmp_path: Path) -> None:
    """Configuration > Profiles: its file, as written, lists both tenants with references (never values), and
    `--profile emea` before or after the command uses it, naming the variable the reference needs."""
    section = _section(README.read_text(encoding="utf-8"), "### Profiles: several tenants in one user config file")
    [example] = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    config = tmp_path / "xdg" / "cxeb" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(example, encoding="utf-8")
    env = _clean_env(XDG_CONFIG_HOME=str(tmp_path / "xdg"), EMEA_CLIENT_SECRET="emea-secret-never-printed")
    listed = _cxeb("profiles", "list", "-o", "json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    profiles = {item["name"]: item for item in json.loads(listed.stdout)}
    assert set(profiles) == {"emea", "apac"}
    assert profiles["emea"]["client-secret"] == "${env:EMEA_CLIENT_SECRET}"
    assert profiles["emea"]["router-url"] == "http://127.0.0.1:8790"
    assert listed.stderr == ""  # references only: no plain-text warning
    assert "--profile NAME" in section
    for args in (["--profile", "apac", "targets", "list"], ["targets", "list", "--profile", "apac"]):
        used = _cxeb(*args, cwd=tmp_path, env=env)
        assert used.returncode == 2, used.stderr
        assert "profiles.apac.client-secret: ${env:APAC_CLIENT_SECRET} names an environment variable" in used.stderr
        assert "emea-secret-never-printed" not in used.stdout + used.stderr


def test_readme_router_config_file_keys_check(tmp_path: Path) -> None:
    """Configuration > The router's config file: the keys it shows are valid, and `--example` then `--check`
    runs as the README says."""
    section = _section(README.read_text(encoding="utf-8"), "### The router's config file")
    shown = re.findall(r"`([a-z-]+ =\s+[^`]+)`", section)
    assert len(shown) >= 3, shown
    (tmp_path / "shown.toml").write_text("\n".join(" ".join(line.split()) for line in shown) + "\n")
    env = _clean_env()
    checked = _cxeb("router", "config", "--check", "shown.toml", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    assert f"{len(shown)} option(s) set, all valid" in checked.stdout + checked.stderr
    assert "cxeb router config --example" in section
    example = _cxeb("router", "config", "--example", cwd=tmp_path, env=env)
    assert example.returncode == 0, example.stderr
    (tmp_path / "router.toml").write_text(example.stdout)
    assert _cxeb("router", "config", "--check", "router.toml", cwd=tmp_path, env=env).returncode == 0
