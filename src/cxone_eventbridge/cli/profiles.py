"""`cxeb profiles list`: the profiles (tenants) of the user config file, never their secrets.

A secret shows as its ``${env:NAME}`` reference, or as ``(plain text)`` when the file holds it literally.
"""

from __future__ import annotations

import os

import typer

from cxone_eventbridge.cli import profile_choice, render

profiles_app = typer.Typer(
    help="Profiles: several tenants' settings in one user config file (--profile NAME, CXEB_PROFILE).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@profiles_app.command("list")
def list_profiles(
    output: render.OutputFormat = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json."),
) -> None:
    """List the profiles of $XDG_CONFIG_HOME/cxeb/config.toml (~/.config/cxeb/config.toml) and what each sets."""
    from cxone_eventbridge.exceptions import ConfigurationError
    from cxone_eventbridge.profiles import default_path, load_profiles

    path = default_path(os.environ)
    try:
        loaded = load_profiles(path)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    for warning in loaded.warnings:
        render.warn(warning)
    chosen = profile_choice.chosen()
    if output is render.OutputFormat.JSON:
        render.print_json(
            [
                {"name": name, "chosen": name == chosen, **profile.described()}
                for name, profile in sorted(loaded.profiles.items())
            ]
        )
        return
    if not loaded.profiles:
        render.info(f"no profiles in {path}")
        return
    lines = [f"{path}:"]
    for name, profile in sorted(loaded.profiles.items()):
        lines.append(f"{name} (chosen)" if name == chosen else name)
        described = profile.described()
        width = max(len(key) for key in described) if described else 0
        lines.extend(f"  {key:<{width}}  {value}" for key, value in described.items())
    render.print_lines(lines)


def register(app: typer.Typer) -> None:
    """Add the ``profiles`` group to the root app."""
    app.add_typer(profiles_app, name="profiles")
