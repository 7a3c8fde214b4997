"""CPU time of `cxeb --help`, every command's `--help` and tab completion (median of N runs each).

CPU time (user + system of the child process), not wall time, so that a loaded machine counts less; the load
average is printed beside the figures. Goal (issue 14): every line under 0.3 s.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 11] [--all]

Without ``--all`` it measures the root help, a sample of command helps and three completions; with it, the
help of every command and group of the tree.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main

from cxone_eventbridge.cli.main import app

CXEB = str(Path(sys.executable).with_name("cxeb"))
SAMPLE = [[], ["targets"], ["router", "send"], ["router", "serve"], ["plan"], ["sandbox", "serve"]]
COMPLETIONS = [("cxeb targets de", 2), ("cxeb -v --log-format json router se", 5), ("cxeb targets delete --", 3)]


def _cpu_seconds(args: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([CXEB, *args], env={**os.environ, **env}, capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _command_paths() -> Iterator[list[str]]:
    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--all", action="store_true", help="every command's --help, not a sample")
    options = parser.parse_args()
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        (" ".join(["cxeb", *path, "--help"]), [*path, "--help"], {})
        for path in (_command_paths() if options.all else SAMPLE)
    ]
    cases += [
        (f"complete {words!r}", [], {"_CXEB_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
        for words, cword in COMPLETIONS
    ]
    load_before = os.getloadavg()
    worst = 0.0
    width = max(len(name) for name, _, _ in cases)
    print(f"{'command':<{width}}  CPU s (median of {options.runs})  min    max")
    for name, args, env in cases:
        times = [_cpu_seconds(args, env) for _ in range(options.runs)]
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{name:<{width}}  {median:>6.3f}                  {min(times):.3f}  {max(times):.3f}")
    load_after = os.getloadavg()
    print(f"slowest median {worst:.3f} s; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")


if __name__ == "__main__":
    main()
