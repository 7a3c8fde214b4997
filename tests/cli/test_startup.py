"""`cxeb --help` and tab completion stay fast: they import none of the heavy libraries a command runs on.

No timing here (speed lives in benchmarks/ and the README's numbers); what is checked is the cause of
slowness measured before: importing pydantic, httpx, aiohttp, fastapi or the package's models to print
help. The check runs the console script's code in a fresh interpreter and lists what it imported.
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
    assert _heavy(_imported(args), extra=("pydantic", "pydantic_settings", "rich")) == []


@pytest.mark.parametrize(
    "args", [["targets", "--help"], ["router", "send", "--help"], ["plan", "--help"], ["sandbox", "serve", "--help"]]
)
def test_command_help_imports_no_http_or_server_library(args: list[str]) -> None:
    """A command's --help imports no HTTP client, server, YAML parser or the models (typer itself brings pydantic)."""
    assert _heavy(_imported(args)) == []


def test_tab_completion_imports_no_http_or_server_library() -> None:
    """Completing `cxeb targets de` imports no HTTP client, server, YAML parser or the models."""
    modules = _imported([], _CXEB_COMPLETE="complete_bash", COMP_WORDS="cxeb targets de", COMP_CWORD="2")
    assert "cxone_eventbridge.cli.main" in modules
    assert _heavy(modules) == []
