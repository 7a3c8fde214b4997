"""Infrastructure as code: ``cxeb plan``, ``apply``, ``import``, ``export terraform``, ``drift``, ``schema``.

Option parsing only; each command runs ``cli/iac_steps.py`` (imported on first use, so that ``cxeb --help``
stays fast). ``plan`` and ``drift`` follow Terraform's ``-detailed-exitcode``: 0 no changes, 2 changes,
1 any error (invalid input included). The others use the usual codes (0 ok, 1 API/runtime error, 2 input).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.defaults import DEFAULT_TERRAFORM_VERSION

FILES = typer.Option(..., "--file", "-f", help="Targets file(s), YAML or JSON; repeat for several.")
PRUNE = typer.Option(False, "--prune", help="Delete remote targets that no file declares.")
OUTPUT = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json.")
FORBID_PLAINTEXT = typer.Option(
    False, "--forbid-plaintext-secrets", help="Make a plain-text secret an error instead of a warning."
)
AUDIT_LOG = typer.Option(
    None, "--audit-log", envvar="CXEB_AUDIT_LOG", help="Append each change to this tamper-evident audit log."
)

export_app = typer.Typer(help="Export the remote targets for other tools.", no_args_is_help=True, rich_markup_mode=None)


def plan_command(
    files: list[Path] = FILES,
    prune: bool = PRUNE,
    output: render.OutputFormat = OUTPUT,
    forbid_plaintext_secrets: bool = FORBID_PLAINTEXT,
    show_all: bool = typer.Option(False, "--all", help="Also list the targets that do not change."),
) -> None:
    """Show what apply would change: exit 0 no changes, 2 changes, 1 error."""
    from cxone_eventbridge.cli import iac_steps

    iac_steps.plan_command(
        files=files, prune=prune, output=output, forbid_plaintext_secrets=forbid_plaintext_secrets, show_all=show_all
    )


def apply_command(  # noqa: PLR0917 -- typer maps each option to a parameter
    files: list[Path] = FILES,
    prune: bool = PRUNE,
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking (needed to delete without a terminal)."),
    output: render.OutputFormat = OUTPUT,
    forbid_plaintext_secrets: bool = FORBID_PLAINTEXT,
    audit_log: Path | None = AUDIT_LOG,
) -> None:
    """Make the remote targets match the file(s): create, update, and with --prune delete."""
    from cxone_eventbridge.cli import iac_steps

    iac_steps.apply_command(
        files=files,
        prune=prune,
        yes=yes,
        output=output,
        forbid_plaintext_secrets=forbid_plaintext_secrets,
        audit_log=audit_log,
    )


def import_command(
    out: Path = typer.Option(..., "--out", help="The targets file to write (.yaml, .yml or .json)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the file if it exists."),
) -> None:
    """Write the remote targets as a targets file (secrets as ${env:...} references)."""
    from cxone_eventbridge.cli import iac_steps

    iac_steps.import_command(out=out, force=force)


@export_app.command("terraform")
def export_terraform_command(
    out: Path = typer.Option(..., "--out", help="Directory for terraform.tfstate and main.tf.json."),
    terraform_version: str = typer.Option(
        DEFAULT_TERRAFORM_VERSION,
        "--terraform-version",
        help="terraform_version written in the state (Terraform refuses a state from a newer version).",
    ),
) -> None:
    """Export the remote targets as a Terraform state (format 4) and configuration with import blocks.

    No ``nice/cxone`` Terraform provider exists: the export lets Terraform track the targets (state list,
    plan against the state) and lets `cxeb drift` compare them later; applying needs such a provider.
    """
    from cxone_eventbridge.cli import iac_steps

    iac_steps.export_terraform_command(out=out, terraform_version=terraform_version)


def drift_command(
    state: Path = typer.Option(..., "--state", help="The exported terraform.tfstate."),
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Compare an exported state with the remote targets: exit 0 no drift, 2 drift, 1 error."""
    from cxone_eventbridge.cli import iac_steps

    iac_steps.drift_command(state=state, output=output)


def schema_command() -> None:
    """Print the JSON Schema of a targets file (one target or a list), for editors and CI."""
    from cxone_eventbridge.cli import iac_steps

    iac_steps.schema_command()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("plan")(plan_command)
    app.command("apply")(apply_command)
    app.command("import")(import_command)
    app.add_typer(export_app, name="export")
    app.command("drift")(drift_command)
    app.command("schema")(schema_command)
