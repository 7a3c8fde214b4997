"""``cxeb demo``: the whole product on loopback (``make demo`` runs it).

The demo imports every part of the product (FastAPI, aiohttp, the router, the sandbox); it is imported
here only when the command runs, so that ``cxeb --version``, completion and every other command start fast.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import typer

from cxone_eventbridge.cli import render


def demo_command(
    events: int | None = typer.Option(
        None, "--events", min=1, help="Route only the first N events of examples/events.jsonl (default: all)."
    ),
    output_dir: Path = typer.Option(
        Path("demo-output"), "--output-dir", help="Where the queue, audit log, receiver records and export go."
    ),
    no_terraform: bool = typer.Option(
        False, "--no-terraform", help="Skip `terraform state list` even when terraform is installed."
    ),
) -> None:
    """Run the whole product on loopback: sandbox, targets, tests, routing, dead letters, Terraform, drift, audit."""
    from cxone_eventbridge.cli.demo_render import run_rendered
    from cxone_eventbridge.demo import DemoOptions
    from cxone_eventbridge.observe.delivery_log import log_delivery_outcomes

    try:
        options = DemoOptions(
            output_dir=output_dir,
            max_events=events,
            terraform_binary=None if no_terraform else shutil.which("terraform"),
            # With -v, each retry and dead letter is logged (with its event and delivery ids); without, the
            # tables say it all and the progress bar stays clean.
            observers=[log_delivery_outcomes]
            if logging.getLogger("cxone_eventbridge").isEnabledFor(logging.INFO)
            else [],
        )
    except ValueError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    run_rendered(options, output_dir)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("demo")(demo_command)
