"""Which profile of the user config file this run uses (``cxeb --profile NAME`` / ``CXEB_PROFILE``), and
the settings read with it.

The root command records the choice once per run (``choose``); every command that reads settings does so
through ``read_cli_settings(kind)``: the environment first, then the chosen profile, then defaults. The
file is read only when a command needs settings, so a run that needs none never fails over a profile.
``--profile`` is also taken after the command, as aws takes it (``accept_after_commands``): a hidden copy of
the root option on every command, which chooses again (the last one given wins). Light at import time:
help and completion import this module.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxone_eventbridge.cli import render

if TYPE_CHECKING:
    from cxone_eventbridge.config import SettingsT
    from cxone_eventbridge.profiles import Profile


@dataclass
class _Choice:
    name: str | None = None
    origin: str = "--profile"  # where the name came from, for messages: the flag or CXEB_PROFILE
    loaded: Profile | None = None  # read once per run: its warnings are printed once


_CHOICE = _Choice()

PROFILE_HELP = (
    "A profile (tenant) of the user config file, $XDG_CONFIG_HOME/cxeb/config.toml: its base URL, client, "
    "router URL and ingest key, under flags and environment variables. Also taken after the command."
)


def choose(name: str | None, *, from_environment: bool = False) -> None:
    """Record this run's profile (None: none), and whether CXEB_PROFILE named it."""
    _CHOICE.name = name or None
    _CHOICE.origin = "CXEB_PROFILE=" if from_environment else "--profile "
    _CHOICE.loaded = None


def _choose_after_command(ctx: Any, param: Any, value: str | None) -> None:
    """The subcommands' --profile: a value given there is this run's choice (it is parsed after the root's)."""
    if value is not None and not ctx.resilient_parsing:
        choose(value)


def accept_after_commands(root: Any, profile_option: Any) -> None:
    """Give every command under ``root`` a hidden ``--profile`` (a copy of the root's, without its envvar).

    Parsing it costs nothing when it is not given (no conversion: lazy_coercion), and help stays as it was.
    """
    option = copy.copy(profile_option)
    option.hidden = True
    option.envvar = None
    option.expose_value = False
    option.callback = _choose_after_command
    stack = list(getattr(root, "commands", {}).values())
    while stack:
        command = stack.pop()
        if not any(param.name == option.name for param in command.params):
            command.params.append(option)
        stack.extend(getattr(command, "commands", {}).values())


def chosen() -> str | None:
    """This run's profile name, if any."""
    return _CHOICE.name


def chosen_profile() -> Profile | None:
    """The chosen profile, read and checked; exit 2 naming the problem (an unknown name lists the known ones)."""
    if _CHOICE.name is None:
        return None
    if _CHOICE.loaded is not None and _CHOICE.loaded.name == _CHOICE.name:
        return _CHOICE.loaded
    from cxone_eventbridge.exceptions import ConfigurationError
    from cxone_eventbridge.profiles import default_path, load_profiles

    path = default_path(os.environ)
    given = f"{_CHOICE.origin}{_CHOICE.name}"
    if not path.exists():
        render.fail(
            f"{given}: there is no user config file at {path} (see the README's Configuration section)",
            render.EXIT_INVALID_INPUT,
        )
    try:
        profiles = load_profiles(path)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    try:
        profile = profiles.get(_CHOICE.name)
    except ConfigurationError as exc:
        render.fail(f"{given}: {exc}", render.EXIT_INVALID_INPUT)
    for warning in profiles.warnings:
        render.warn(warning)
    _CHOICE.loaded = profile
    return profile


def source_of(variable: str) -> str:
    """What set a setting, for hints: ``variable`` when the environment sets it (or nothing does), else the
    chosen profile's key (``base-url of profile a``), so a user is not sent looking for a variable never set."""
    profile = _CHOICE.loaded
    key = variable.split("_", 1)[1].lower().replace("_", "-")
    if os.environ.get(variable) or profile is None or key not in profile.raw:
        return variable
    return f"{key} of profile {profile.name}"


def read_cli_settings(kind: type[SettingsT]) -> SettingsT:
    """``kind`` from the environment and this run's profile; ConfigurationError naming what is invalid."""
    from cxone_eventbridge.config import read_settings

    return read_settings(kind, profile=chosen_profile())
