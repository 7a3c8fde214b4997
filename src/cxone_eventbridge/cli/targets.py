"""``cxeb targets``: validate, create, list, get, update, delete and test integration targets.

Secrets never reach the output: targets are printed in their read form (``authentication.value`` null,
a fingerprint instead), and errors are built without them. ``ID|NAME`` arguments accept either.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cxone_eventbridge import secret_refs
from cxone_eventbridge.cli import render, runner
from cxone_eventbridge.cli.confirm import confirm_deletion
from cxone_eventbridge.exceptions import APIError, InputError, TargetsFileError

if TYPE_CHECKING:
    from cxone_eventbridge.api import CXoneClient, RotatedSecret
    from cxone_eventbridge.models import IntegrationTarget, TargetTestResult

targets_app = typer.Typer(
    help="Create, validate, test, update, delete and list integration targets.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

OUTPUT = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json (the API's shapes).")
FORBID_PLAINTEXT = typer.Option(
    False, "--forbid-plaintext-secrets", help="Make a plain-text secret an error instead of a warning."
)
AUDIT_LOG = typer.Option(
    None, "--audit-log", envvar="CXEB_AUDIT_LOG", help="Append each change to this tamper-evident audit log."
)
TARGET_REF = typer.Argument(..., metavar="ID|NAME", help="The target's id or its name.")


def _auth_label(target: IntegrationTarget) -> str:
    from cxone_eventbridge.models import AuthType

    auth = target.authentication
    if auth.type is AuthType.NONE:
        return "none"
    label = auth.type.value
    if auth.type is AuthType.API_KEY and auth.header_name:
        label += f" ({auth.header_name})"
    return label


def _print_targets(targets: list[IntegrationTarget], output: render.OutputFormat, *, title: str | None) -> None:
    if output is render.OutputFormat.JSON:
        render.print_json([t.to_wire() for t in targets])
        return
    if not targets:
        render.info("no targets")
        return
    # Aligned lines, as `router dlq list`, not a table: at 80 columns a table folded each 36-character
    # `tgt_…` id over three lines, and one that keeps the id whole leaves NAME and ENDPOINT 4 characters
    # each. The endpoint, the longest value, comes last, so the columns before it stay aligned.
    rows = [["ID", "NAME", "AUTH", "RULES", "STATUS", "ENDPOINT"]] + [
        [
            t.id or "",
            t.name,
            _auth_label(t),
            f"{len(t.event_filters) + (1 if t.event_pattern else 0):,}",
            t.status.value if t.status else "",
            t.endpoint,
        ]
        for t in targets
    ]
    if title:
        render.info(title)
    render.print_aligned(rows)


def _print_target(target: IntegrationTarget, output: render.OutputFormat) -> None:
    if output is render.OutputFormat.JSON:
        render.print_json(target.to_wire())
        return
    _print_targets([target], output, title=None)
    rows = [("signing secret", target.signing_secret_fingerprint, "")]
    if (previous := target.previous_signing_secret) is not None:
        expires = previous.expires_at.isoformat().replace("+00:00", "Z")
        rows.append(("previous signing secret", previous.fingerprint, f"also signs until {expires}"))
    if target.signing_secret_fingerprint is not None or previous is not None:
        render.print_table(None, ["SECRET", "FINGERPRINT", "GRACE PERIOD"], rows)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_grace(text: str) -> int:
    """``--grace``: seconds from ``90s``, ``30m``, ``24h``, ``7d`` or a plain number of seconds."""
    from cxone_eventbridge.models import MAX_GRACE_PERIOD_S

    value = text.strip().lower()
    unit = _DURATION_UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    if not number.isdigit():
        raise InputError(f"--grace: {text!r} is not a duration like 24h, 30m, 90s or 7d")
    seconds = int(number) * (unit or 1)
    if seconds > MAX_GRACE_PERIOD_S:
        raise InputError(f"--grace: {text!r} is longer than the maximum of {MAX_GRACE_PERIOD_S // 86_400}d")
    return seconds


def _print_test(name: str, result: TargetTestResult, output: render.OutputFormat) -> None:
    if output is render.OutputFormat.JSON:
        render.print_json({"target": name, **result.to_wire()})
        return
    latency = f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
    render.print_table(
        None,
        ["TARGET", "RESULT", "HTTP", "LATENCY", "ERROR"],
        [(name, result.result.value, result.status_code, latency, result.error)],
    )


@targets_app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Targets files (YAML or JSON)."),
    forbid_plaintext_secrets: bool = FORBID_PLAINTEXT,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Check targets files offline (no settings needed); report every problem of every file; exit 2 if any."""
    from cxone_eventbridge.cli.context import load_targets
    from cxone_eventbridge.iac.targets_file import SecretResolution

    report: list[dict[str, Any]] = []
    invalid = 0
    for path in files:
        entry: dict[str, Any] = {"file": str(path), "valid": True, "targets": [], "errors": [], "warnings": []}
        try:
            (loaded,) = load_targets(
                [path], resolution=SecretResolution.OFFLINE, forbid_plaintext_secrets=forbid_plaintext_secrets
            )
        except TargetsFileError as exc:
            invalid += 1
            entry["valid"] = False
            entry["errors"] = [e.to_wire() for e in exc.errors] or [{"field": "", "message": exc.message}]
            if output is render.OutputFormat.TABLE:
                render.error(str(exc))
        else:
            entry["targets"] = [t.name for t in loaded.targets]
            entry["warnings"] = loaded.warnings
            if output is render.OutputFormat.TABLE:
                render.success(f"{path}: {len(loaded.targets)} target(s) valid")
        report.append(entry)
    if output is render.OutputFormat.JSON:
        render.print_json(report)
    if invalid:
        raise typer.Exit(render.EXIT_INVALID_INPUT)


@targets_app.command("create")
def create(
    files: list[Path] = typer.Option(..., "--file", "-f", help="Targets file(s); every target in them is created."),
    forbid_plaintext_secrets: bool = FORBID_PLAINTEXT,
    test: bool = typer.Option(False, "--test", help="Test each target right after creating it."),
    output: render.OutputFormat = OUTPUT,
    audit_log: Path | None = AUDIT_LOG,
) -> None:
    """Create every target in the file(s). A failure does not stop the rest; exit 1 if any failed."""
    from cxone_eventbridge.cli.context import all_targets, api_client, load_targets, require_api_settings
    from cxone_eventbridge.iac.targets_file import SecretResolution

    settings = require_api_settings()

    async def main() -> bool:
        targets = all_targets(
            load_targets(files, resolution=SecretResolution.REQUIRED, forbid_plaintext_secrets=forbid_plaintext_secrets)
        )
        created: list[IntegrationTarget] = []
        failed = False
        async with api_client(settings, audit_log=audit_log) as client:
            for target in targets:
                try:
                    if test:
                        made, result = await client.targets.create_and_test(target)
                        if not result.passed:
                            failed = True
                            render.error(f"{made.name}: test failed: {result.error or result.status_code}")
                    else:
                        made = await client.targets.create(target)
                except APIError as exc:
                    failed = True
                    render.error(f"{target.name}: {exc}")
                    continue
                created.append(made)
        _print_targets(created, output, title="Created targets")
        return failed

    if runner.run(main()):
        raise typer.Exit(render.EXIT_ERROR)


@targets_app.command("list")
def list_targets(output: render.OutputFormat = OUTPUT) -> None:
    """Every target (secrets shown only as fingerprints)."""
    from cxone_eventbridge.cli.context import api_client, require_api_settings

    settings = require_api_settings()

    async def main() -> list[IntegrationTarget]:
        async with api_client(settings) as client:
            return [t async for t in client.targets.list()]

    _print_targets(runner.run(main()), output, title="Integration targets")


@targets_app.command("get")
def get(ref: str = TARGET_REF, output: render.OutputFormat = OUTPUT) -> None:
    """One target by id or name."""
    from cxone_eventbridge.cli.context import api_client, require_api_settings

    settings = require_api_settings()

    async def main() -> IntegrationTarget:
        async with api_client(settings) as client:
            return await client.targets.resolve(ref)

    _print_target(runner.run(main()), output)


@targets_app.command("update")
def update(
    ref: str = TARGET_REF,
    file: Path = typer.Option(..., "--file", "-f", help="A targets file holding exactly one target."),
    forbid_plaintext_secrets: bool = FORBID_PLAINTEXT,
    output: render.OutputFormat = OUTPUT,
    audit_log: Path | None = AUDIT_LOG,
) -> None:
    """Replace a target with the one in FILE (its signing secret is kept unless FILE sets one).

    FILE may be `targets get -o json` output, edited: the fields the server sets are ignored, and an
    authentication shown by its valueFingerprint (value null) keeps the current secret.
    """
    from cxone_eventbridge.cli.context import all_targets, api_client, load_targets, require_api_settings
    from cxone_eventbridge.iac.targets_file import SecretResolution

    settings = require_api_settings()

    async def main() -> IntegrationTarget:
        targets = all_targets(
            load_targets(
                [file], resolution=SecretResolution.REQUIRED, forbid_plaintext_secrets=forbid_plaintext_secrets
            )
        )
        if len(targets) != 1:
            raise InputError(f"{file}: holds {len(targets)} targets; update needs exactly one")
        desired = targets[0]
        async with api_client(settings, audit_log=audit_log) as client:
            current = await client.targets.resolve(ref)
            assert current.id is not None
            if desired.authentication.value is None and desired.authentication.value_fingerprint:
                return await _update_keeping_secret(client, current, desired, file)
            return await client.targets.update(current.id, desired)

    updated = runner.run(main())
    _print_target(updated, output)


async def _update_keeping_secret(
    client: CXoneClient, current: IntegrationTarget, desired: IntegrationTarget, file: Path
) -> IntegrationTarget:
    """Every field of ``desired`` but its authentication, which keeps the current secret (a PATCH)."""
    from cxone_eventbridge.api import request_body

    shown, held = desired.authentication, current.authentication
    if (shown.type, shown.value_fingerprint, shown.header_name) != (
        held.type,
        held.value_fingerprint,
        held.header_name,
    ):
        raise InputError(
            f"{file}: authentication: shown by a fingerprint that is not the current secret's "
            f"({held.value_fingerprint or 'none'}); write the secret as a ${{env:NAME}} reference to change it"
        )
    render.info("authentication: shown by its fingerprint; the current secret is kept")
    changes = {key: value for key, value in request_body(desired).items() if key != "authentication"}
    for key in ("eventFilters", "eventPattern", "description"):
        changes.setdefault(key, [] if key == "eventFilters" else None)  # cleared in the file: cleared remotely
    assert current.id is not None
    return await client.targets.patch(current.id, changes)


@targets_app.command("delete")
def delete(
    ref: str = TARGET_REF,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    audit_log: Path | None = AUDIT_LOG,
) -> None:
    """Delete a target. Asks first on a terminal; elsewhere refuses (exit 2) without --yes."""
    from cxone_eventbridge.cli.context import api_client, require_api_settings

    settings = require_api_settings()
    if not yes and not sys.stdin.isatty():
        confirm_deletion("", yes=yes, refusal=f"not deleting target {ref!r}")

    async def find() -> IntegrationTarget:
        async with api_client(settings) as client:
            return await client.targets.resolve(ref)

    target = runner.run(find())
    confirm_deletion(
        f"Delete target {target.name!r} ({target.id})?", yes=yes, refusal=f"not deleting target {target.name!r}"
    )

    async def remove() -> None:
        assert target.id is not None
        async with api_client(settings, audit_log=audit_log) as client:
            await client.targets.delete(target.id, name=target.name)

    runner.run(remove())
    render.success(f"deleted target {target.name!r} ({target.id})")


def _new_signing_secret(secret: str) -> str:
    """``--secret``: a ``${env:NAME}`` reference resolved (or plain text, warned), checked to be a whsec_ secret."""
    from cxone_eventbridge.signing import validate_signing_secret

    if (problem := secret_refs.reference_syntax_error(secret)) is not None:
        raise InputError(f"--secret: {problem}")
    name = secret_refs.reference_name(secret)
    if name is None:
        render.warn("--secret holds a plain-text secret (shell history keeps it); use a ${env:NAME} reference")
    resolved = secret_refs.resolve(secret, os.environ)
    if resolved is None:
        raise InputError(f"--secret: the variable {name} is not set")
    try:
        validate_signing_secret(resolved)
    except ValueError as exc:
        raise InputError(f"--secret: {exc}") from None
    return resolved


@targets_app.command("rotate-secret")
def rotate_secret(
    ref: str = TARGET_REF,
    secret: str | None = typer.Option(
        None,
        "--secret",
        help="The new whsec_ secret, as a ${env:NAME} reference (recommended); omitted: the server generates one.",
    ),
    grace: str = typer.Option(
        "24h", "--grace", help="How long deliveries carry the old secret's signature too (e.g. 24h, 30m, 0)."
    ),
    output: render.OutputFormat = OUTPUT,
    audit_log: Path | None = AUDIT_LOG,
) -> None:
    """Rotate the target's signing secret; both secrets sign deliveries until the grace period ends.

    A generated secret is printed once, here: hand it to the receiver now, it cannot be read back.
    """
    from cxone_eventbridge.cli.context import api_client, require_api_settings

    try:
        grace_s = parse_grace(grace)
        new_secret = _new_signing_secret(secret) if secret is not None else None
    except InputError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    settings = require_api_settings()

    async def main() -> RotatedSecret:
        async with api_client(settings, audit_log=audit_log) as client:
            target = await client.targets.resolve(ref)
            assert target.id is not None
            return await client.targets.rotate_secret(
                target.id, secret=new_secret, grace_period_s=grace_s, name=target.name
            )

    rotated = runner.run(main())
    generated = rotated.generated.get_secret_value() if rotated.generated is not None else None
    if output is render.OutputFormat.JSON:
        render.print_json({**rotated.target.to_wire(), "generatedSigningSecret": generated})
        return
    _print_target(rotated.target, output)
    if generated is not None:
        render.stdout.print(f"new signing secret (shown once): {generated}", highlight=False, markup=False)


@targets_app.command("test")
def run_target_test(
    ref: str = TARGET_REF, output: render.OutputFormat = OUTPUT, audit_log: Path | None = AUDIT_LOG
) -> None:
    """Send one synthetic event to the target's endpoint; exit 1 when the endpoint failed it."""
    from cxone_eventbridge.cli.context import api_client, require_api_settings

    settings = require_api_settings()

    async def main() -> tuple[str, TargetTestResult]:
        async with api_client(settings, audit_log=audit_log) as client:
            target = await client.targets.resolve(ref)
            assert target.id is not None
            return target.name, await client.targets.test(target.id, name=target.name)

    name, result = runner.run(main())
    _print_test(name, result, output)
    if not result.passed:
        raise typer.Exit(render.EXIT_ERROR)


def register(app: typer.Typer) -> None:
    """Add the ``targets`` group to the root app."""
    app.add_typer(targets_app, name="targets")
