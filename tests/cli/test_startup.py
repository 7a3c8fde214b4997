"""`cxeb --help` and tab completion stay fast: they import none of the heavy libraries a command runs on.

No timing here (speed lives in benchmarks/ and the README's numbers); what is checked is the cause of
slowness measured before: importing pydantic, httpx, aiohttp, fastapi, asyncio or the package's models to
print help or complete a word. typer converts option values through pydantic adapters that it builds on first
use, even defaults, so a subcommand's help or a completion (both parse the root options) used to import
pydantic: `cli.lazy_coercion` leaves values that need no conversion alone. The check runs the console
script's code in a fresh interpreter and lists what it imported. Timings: `benchmarks/bench_cli_startup.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = (
    "httpx",
    "aiohttp",
    "fastapi",
    "uvicorn",
    "yaml",
    "cryptography",
    "prometheus_client",
    "re2",
    "asyncpg",
    "pyreqwest",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "asyncio",
)
PROBE = """
import json, sys
sys.argv = ["cxeb", *json.loads(sys.argv[1])]
from cxone_eventbridge.cli.main import run
try:
    run()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported(args: list[str], **env: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def _heavy(modules: set[str], extra: tuple[str, ...] = ()) -> list[str]:
    roots = HEAVY + extra
    return sorted(m for m in modules if m.split(".")[0] in roots or m == "cxone_eventbridge.models")


@pytest.mark.parametrize("args", [["--help"], [], ["--version"]], ids=["help", "no-args", "version"])
def test_root_help_imports_nothing_heavy(args: list[str]) -> None:
    """`cxeb --help` (and bare `cxeb`, `--version`) import neither pydantic nor any HTTP, server or YAML library."""
    assert _heavy(_imported(args), extra=("rich",)) == []


ALL_HELP_PROBE = """
import json, sys
from cxone_eventbridge.cli.main import app
import typer.main

def commands(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, [*path, name])

paths = list(commands(typer.main.get_command(app), []))
for path in paths:
    sys.argv = ["cxeb", "-v", "--log-format", "json", "--profile", "p", *path, "--help"]
    try:
        app()
    except SystemExit:
        pass
print(json.dumps({"paths": paths, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def test_every_command_help_imports_nothing_heavy() -> None:
    """Every command's and group's --help, after every root option, imports neither pydantic nor HTTP/server libraries."""
    result = subprocess.run(
        [sys.executable, "-c", ALL_HELP_PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    probe = json.loads(result.stderr.strip().splitlines()[-1])
    assert ["router", "serve"] in probe["paths"]
    assert len(probe["paths"]) > 30
    assert _heavy(set(probe["modules"])) == []


@pytest.mark.parametrize(
    ("words", "cword"),
    [
        ("cxeb targets de", "2"),
        ("cxeb -v --log-format json --profile p router se", "7"),
        ("cxeb targets delete --", "3"),
        ("cxeb router serve --config router.toml --dr", "5"),
    ],
)
def test_tab_completion_imports_nothing_heavy(words: str, cword: str) -> None:
    """Completing a command or an option imports neither pydantic nor an HTTP client, server, YAML parser or models."""
    modules = _imported([], _CXEB_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=cword)
    assert "cxone_eventbridge.cli.main" in modules
    assert _heavy(modules) == []
