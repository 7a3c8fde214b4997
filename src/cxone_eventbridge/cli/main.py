"""The ``cxeb`` command: the root app, global options, and the command groups registered from their modules."""

from __future__ import annotations

import logging
from typing import Any

import typer

from cxone_eventbridge.cli import (
    audit,
    demo,
    iac,
    lazy_coercion,
    match,
    profile_choice,
    profiles,
    router,
    sandbox,
    targets,
    trigger,
)
from cxone_eventbridge.cli.logs import LogFormat, configure_logging


class _RootGroup(lazy_coercion.LightGroup):
    """The root group: its --profile is also taken after any command (profile_choice.accept_after_commands)."""

    _profile_everywhere = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not self._profile_everywhere:
            root_profile = next(param for param in self.params if param.name == "profile")
            profile_choice.accept_after_commands(self, root_profile)
            self._profile_everywhere = True
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="cxeb",
    help="Manage NICE CXone integration targets and route contact-center events to them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help, as click prints it: every option's default and [env var: ...] shown (rich markup took
    # square brackets for tags), no <bool> placeholder on flags, and no rich import for --help or completion.
    rich_markup_mode=None,
    # Help and tab completion without pydantic (typer converts even default values through it).
    cls=_RootGroup,
)


def _version(value: bool) -> None:
    if value:
        from cxone_eventbridge import __version__

        typer.echo(f"cxeb {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-vv for debug)."),
    log_format: LogFormat = typer.Option(LogFormat.TEXT, "--log-format", help="Logs as text or JSON lines."),
    profile: str | None = typer.Option(
        None, "--profile", envvar="CXEB_PROFILE", metavar="NAME", help=profile_choice.PROFILE_HELP
    ),
) -> None:
    """Global options."""
    source = ctx.get_parameter_source("profile")
    profile_choice.choose(profile, from_environment=source is not None and source.name == "ENVIRONMENT")
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    configure_logging(level=level, log_format=log_format)


for module in (targets, sandbox, router, audit, iac, demo, match, trigger, profiles):
    module.register(app)


def run() -> None:
    """Console-script entry point."""
    app()
