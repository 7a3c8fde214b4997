"""`cxeb audit verify [PATH]`: check the audit log's hash chain; exit 1 when it was tampered with."""

from __future__ import annotations

from pathlib import Path

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.defaults import DEFAULT_AUDIT_LOG

audit_app = typer.Typer(help="Check the tamper-evident audit log.", no_args_is_help=True, rich_markup_mode=None)


@audit_app.command("verify")
def verify(
    path: Path = typer.Argument(DEFAULT_AUDIT_LOG, help="The live audit log (rotated files PATH.1, PATH.2... too)."),
    output: render.OutputFormat = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json."),
) -> None:
    """Verify every line's hash and the chain across rotated files; safe while the router is writing.

    Exit 0 when the chain holds (a torn last line left by a crash is a warning, not tampering), 1 when a
    line was edited, removed or reordered (the first such line is named), 2 when there is no log. A chain
    that holds but starts after seq 1, or records that something was lost (failed writes, a dropped torn
    line, a replaced file), is reported as incomplete, with each gap, not as intact.
    """
    from cxone_eventbridge.observe.audit import verify_audit_log

    result = verify_audit_log(path)
    if output is render.OutputFormat.JSON:
        render.print_json(result.to_dict())
    else:
        for note in result.notes:
            render.warn(note)
        for gap in result.gaps:
            render.warn(gap)
        counts = (
            f"{result.records:,} record(s), seq {_number(result.first_seq)}..{_number(result.last_seq)}, "
            f"{len(result.files):,} file(s)"
        )
        if result.complete:
            render.success(f"audit log intact: {counts}")
        elif result.ok:
            # Nothing was edited, but the chain itself says it is not whole: never call that "intact".
            missing = [] if result.first_seq in (None, 1) else [f"starts at seq {_number(result.first_seq)}"]
            if result.gaps:
                missing.append(f"{len(result.gaps):,} recorded gap(s)")
            render.success(f"audit log unaltered but incomplete ({', '.join(missing)}): {counts}")
    if result.problem is None:
        return
    if result.problem.kind == "missing":
        render.fail(result.problem.message, render.EXIT_INVALID_INPUT)
    message = f"audit log tampered with: {result.problem.message} ({result.records:,} record(s) before it verified)"
    if output is render.OutputFormat.JSON:
        raise typer.Exit(render.EXIT_ERROR)
    render.fail(message, render.EXIT_ERROR)


def _number(value: int | None) -> str:
    """A count or seq with thousands separators, as every other CLI number is printed; "none" for no seq."""
    return "none" if value is None else f"{value:,}"


def register(app: typer.Typer) -> None:
    """Add the ``audit`` group to the root app."""
    app.add_typer(audit_app, name="audit")
