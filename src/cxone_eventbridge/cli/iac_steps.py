"""What ``cxeb plan``, ``apply``, ``import``, ``export terraform`` and ``drift`` do, and how they show it.

``cli/iac.py`` parses the options and calls these on first use (they import the IaC machinery, which
``cxeb --help`` must not). ``plan`` and ``drift`` follow Terraform's ``-detailed-exitcode``: 0 no changes,
2 changes, 1 any error (invalid input included). The others use the usual codes (0 ok, 1 error, 2 input).
A plan is shown as Terraform shows one: a line per target that changes (``--all`` adds the unchanged),
its changes indented below, objects such as patterns as indented JSON; nothing is cut at 80 columns.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cxone_eventbridge.cli import render, runner
from cxone_eventbridge.cli.confirm import confirm_deletion
from cxone_eventbridge.cli.context import api_client, load_targets, require_api_settings
from cxone_eventbridge.exceptions import FieldError, InputError, TargetsFileError
from cxone_eventbridge.iac.apply import ApplyReport, StepResult, apply_plan, check_secrets_available
from cxone_eventbridge.iac.drift import DriftReport, detect_drift
from cxone_eventbridge.iac.export import export_terraform
from cxone_eventbridge.iac.importer import FileFormat, render_targets_file
from cxone_eventbridge.iac.plan import Action, FieldChange, Plan, TargetPlan, compute_plan
from cxone_eventbridge.iac.remote import read_remote
from cxone_eventbridge.iac.schema import targets_file_schema
from cxone_eventbridge.iac.targets_file import SecretResolution
from cxone_eventbridge.iac.terraform import parse_state
from cxone_eventbridge.models import IntegrationTarget

T = TypeVar("T")

_SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.UNCHANGED: " "}


def _detailed_exitcode(step: Callable[[], T]) -> T:
    """Run a step of ``plan``/``drift``: any failure, input errors included, exits 1 (not 2, which means changes)."""
    try:
        return step()
    except typer.Exit as exc:
        if exc.exit_code not in (0, render.EXIT_ERROR):
            raise typer.Exit(render.EXIT_ERROR) from None
        raise


# --- plan ----------------------------------------------------------------------------------------------


class _Desired:
    """The targets of one or more files, with the secrets whose variables are unset."""

    def __init__(self, files: Sequence[Path], *, forbid_plaintext_secrets: bool) -> None:
        loaded = load_targets(
            files, resolution=SecretResolution.AVAILABLE, forbid_plaintext_secrets=forbid_plaintext_secrets
        )
        self.targets: list[IntegrationTarget] = []
        self.unresolved: dict[str, list[str]] = {}
        seen: dict[str, Path] = {}
        errors: list[FieldError] = []
        for result in loaded:
            for target in result.targets:
                if target.name in seen:
                    errors.append(FieldError(f"{result.path}: name", f"{target.name!r} is also in {seen[target.name]}"))
                    continue
                seen[target.name] = result.path
                self.targets.append(target)
            self.unresolved.update(result.unresolved)
        if errors:
            raise TargetsFileError("target names must be unique across files", errors)


async def _plan(desired: _Desired, *, prune: bool) -> tuple[Plan, tuple[str, ...]]:
    settings = require_api_settings()
    async with api_client(settings) as client:
        remote = await read_remote(client, desired.targets)
    plan = compute_plan(
        desired.targets,
        remote.targets,
        unresolved=desired.unresolved,
        signing_fingerprints=remote.signing_fingerprints,
        prune=prune,
    )
    return plan, remote.notes


def _json_lines(value: Any) -> list[str]:
    """A value as JSON: scalars on one line, objects and arrays indented over several, keys sorted so that
    a value read from the file and the same value read back from the API print their keys alike."""
    if isinstance(value, dict | list) and value:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
    return [json.dumps(value, ensure_ascii=False)]


def _change_lines(change: FieldChange, action: Action) -> list[str]:
    """One field's change: ``path: after`` for a create, ``path: before -> after`` for scalars, a line diff
    (``-``/``+``) of the indented JSON for an object or array."""
    if change.sensitive:
        return [f"{change.path}: (sensitive value{' changed' if action is Action.UPDATE else ''})"]
    after = _json_lines(change.after)
    if action is Action.CREATE:
        return [f"{change.path}: {after[0]}", *after[1:]]
    before = _json_lines(change.before)
    if len(before) == 1 and len(after) == 1:
        return [f"{change.path}: {before[0]} -> {after[0]}"]
    # A line diff of the two indented JSON texts, whole (every line as context), unified style: a one-key
    # change is one '-' and one '+' line where two whole blocks would make the reader compare them.
    whole = max(len(before), len(after))
    diff = list(difflib.unified_diff(before, after, lineterm="", n=whole))[3:]  # no ---/+++/@@ header
    return [f"{change.path}:", *(f"  {line}" for line in diff)]


def _item_lines(item: TargetPlan) -> list[str]:
    lines = [line for change in item.changes for line in _change_lines(change, item.action)]
    lines += [f"{path}: unknown (its variable is not set)" for path in item.unknown]
    if (previous := item.previous_signing_secret) is not None:
        lines.append(f"previous signing secret also signs until {previous['expiresAt']}")
    return lines


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    if not plan.has_changes:
        return f"No changes. {counts['unchanged']:,} target(s) match the file."
    return (
        f"Plan: {counts['create']:,} to create, {counts['update']:,} to update, {counts['delete']:,} to delete, "
        f"{counts['unchanged']:,} unchanged (--all shows them)."
    )


def _print_plan(plan: Plan, output: render.OutputFormat, notes: Sequence[str] = (), *, show_all: bool = False) -> None:
    for note in notes:
        render.warn(note)
    if output is render.OutputFormat.JSON:
        render.print_json(plan.to_json())
        return
    lines: list[str] = []
    for item in plan.items if show_all else plan.pending:
        where = f" ({item.target_id})" if item.target_id else ""
        lines.append(f"{_SYMBOLS[item.action]} {item.action.value} {item.name}{where}")
        lines += [f"    {line}" for line in _item_lines(item)]
    lines.append(summary_line(plan))
    render.print_lines(lines)
    if plan.unmanaged:
        render.info(
            f"{len(plan.unmanaged)} remote target(s) are not in the file and are left alone "
            f"(--prune deletes them): {', '.join(plan.unmanaged)}"
        )


def plan_command(
    *,
    files: list[Path],
    prune: bool,
    output: render.OutputFormat,
    forbid_plaintext_secrets: bool,
    show_all: bool,
) -> None:
    """Show what apply would change: exit 0 no changes, 2 changes, 1 error."""

    def step() -> tuple[Plan, tuple[str, ...]]:
        desired = runner.run(_load(files, forbid_plaintext_secrets))
        return runner.run(_plan(desired, prune=prune))

    plan, notes = _detailed_exitcode(step)
    _print_plan(plan, output, notes, show_all=show_all)
    raise typer.Exit(2 if plan.has_changes else 0)


async def _load(files: Sequence[Path], forbid_plaintext_secrets: bool) -> _Desired:
    # Loading inside runner.run turns a TargetsFileError into one message, never a traceback.
    return _Desired(files, forbid_plaintext_secrets=forbid_plaintext_secrets)


# --- apply ---------------------------------------------------------------------------------------------


def apply_command(
    *,
    files: list[Path],
    prune: bool,
    yes: bool,
    output: render.OutputFormat,
    forbid_plaintext_secrets: bool,
    audit_log: Path | None,
) -> None:
    """Make the remote targets match the file(s): create, update, and with --prune delete."""
    desired = runner.run(_load(files, forbid_plaintext_secrets))
    plan, notes = runner.run(_plan(desired, prune=prune))
    if not plan.has_changes:
        if output is render.OutputFormat.JSON:
            render.print_json({"plan": plan.to_json(), "apply": ApplyReport(done=()).to_json()})
        else:
            render.success(summary_line(plan))
        return
    if output is render.OutputFormat.TABLE:
        _print_plan(plan, output, notes)
    try:
        check_secrets_available(plan, desired.unresolved)
    except InputError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    deletes = plan.summary()["delete"]
    if deletes:
        confirm_deletion(
            f"Apply these changes, deleting {deletes} target(s)?",
            yes=yes,
            refusal=f"not applying: the plan deletes {deletes} target(s)",
        )
    elif not yes and sys.stdin.isatty() and not typer.confirm("Apply these changes?"):
        render.fail("apply cancelled; nothing was changed", render.EXIT_ERROR)
    report = runner.run(_apply(plan, audit_log=audit_log, show_progress=output is render.OutputFormat.TABLE))
    _print_report(plan, report, output)
    if not report.ok:
        raise typer.Exit(render.EXIT_ERROR)


async def _apply(plan: Plan, *, audit_log: Path | None, show_progress: bool) -> ApplyReport:
    settings = require_api_settings()
    total = len(plan.pending)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=render.stderr,
        transient=False,
        disable=not show_progress,
    ) as bar:
        task = bar.add_task("applying", total=total)

        def progress(item: TargetPlan, result: StepResult) -> None:
            verb = "failed to " + item.action.value if not result.ok else item.action.value + "d"
            bar.update(task, advance=1 if result.ok else 0, description=f"{verb} {item.name}")

        async with api_client(settings, audit_log=audit_log) as client:
            return await apply_plan(plan, client, progress=progress)


def _print_report(plan: Plan, report: ApplyReport, output: render.OutputFormat) -> None:
    if output is render.OutputFormat.JSON:
        render.print_json({"plan": plan.to_json(), "apply": report.to_json()})
        return
    rows: list[tuple[Any, ...]] = [(step.action.value, step.name, step.target_id, "done") for step in report.done]
    if report.failed is not None:
        rows.append((report.failed.action.value, report.failed.name, report.failed.target_id, "FAILED"))
    rows += [(item.action.value, item.name, item.target_id, "not done") for item in report.not_done]
    render.print_table("apply", ["ACTION", "NAME", "ID", "RESULT"], rows)
    if report.ok:
        render.success(f"Apply complete: {len(report.done)} change(s) made.")
    else:
        assert report.failed is not None
        render.error(
            f"apply stopped at {report.failed.name!r}: {report.failed.error}\n"
            f"{len(report.done)} done, {len(report.not_done) + 1} not done; run apply again to converge."
        )


# --- import --------------------------------------------------------------------------------------------


def import_command(*, out: Path, force: bool) -> None:
    """Write the remote targets as a targets file (secrets as ${env:...} references)."""
    if out.exists() and not force:
        render.fail(f"--out: {out} exists; pass --force to overwrite it", render.EXIT_INVALID_INPUT)

    async def main() -> list[IntegrationTarget]:
        async with api_client(require_api_settings()) as client:
            return await client.targets.list_all()

    targets = runner.run(main())
    imported = render_targets_file(targets, file_format=FileFormat.for_path(str(out)))
    try:
        out.write_text(imported.text, encoding="utf-8")
    except OSError as exc:
        render.fail(f"--out: cannot write {out}: {exc.strerror or exc}", render.EXIT_ERROR)
    render.success(f"Wrote {imported.targets} target(s) to {out}.")
    if imported.variables:
        render.info(
            "Secrets are references; set these variables to compare or send them: "
            + ", ".join(sorted(imported.variables.values()))
        )


# --- export terraform ----------------------------------------------------------------------------------


def export_terraform_command(*, out: Path, terraform_version: str) -> None:
    """Export the remote targets as a Terraform state (format 4) and configuration with import blocks."""

    async def main() -> list[IntegrationTarget]:
        async with api_client(require_api_settings()) as client:
            return await client.targets.list_all()

    targets = runner.run(main())
    try:
        result = export_terraform(out, targets, terraform_version=terraform_version)
    except InputError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    except OSError as exc:
        render.fail(f"--out: cannot write {out}: {exc.strerror or exc}", render.EXIT_ERROR)
    state = "written" if result.state_written else "unchanged"
    render.success(
        f"Exported {result.targets} target(s) to {out}: terraform.tfstate {state} "
        f"(serial {result.identity.serial}, lineage {result.identity.lineage}), "
        f"main.tf.json {'written' if result.config_written else 'unchanged'}."
    )


# --- drift ---------------------------------------------------------------------------------------------


def drift_command(*, state: Path, output: render.OutputFormat) -> None:
    """Compare an exported state with the remote targets: exit 0 no drift, 2 drift, 1 error."""

    def step() -> DriftReport:
        try:
            text = state.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            render.fail(f"--state: cannot read {state}: {exc}", render.EXIT_ERROR)

        async def main() -> DriftReport:
            parsed = parse_state(text, source=str(state))
            async with api_client(require_api_settings()) as client:
                remote = await client.targets.list_all()
            return detect_drift(parsed, remote, source=str(state))

        return runner.run(main())

    report = _detailed_exitcode(step)
    if output is render.OutputFormat.JSON:
        render.print_json(report.to_json())
    else:
        lines: list[str] = []
        for item in report.items:
            where = f" ({item.target_id})" if item.target_id else ""
            lines.append(f"~ {item.kind.value} {item.name}{where}")
            lines += [f"    {line}" for change in item.changes for line in _change_lines(change, Action.UPDATE)]
        if lines:
            lines.append(f"Drift: {len(report.items):,} target(s) differ from {state}.")
        else:
            lines.append(f"No drift: {report.checked:,} target(s) match {state}.")
        render.print_lines(lines)
    raise typer.Exit(2 if report.has_drift else 0)


# --- schema --------------------------------------------------------------------------------------------


def schema_command() -> None:
    """Print the JSON Schema of a targets file (one target or a list), for editors and CI."""
    render.print_json(targets_file_schema())
