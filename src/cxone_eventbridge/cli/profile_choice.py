"""Which profile of the user config file this run uses (``cxeb --profile NAME`` / ``CXEB_PROFILE``), and
the settings read with it.

The root command records the choice once per run (``choose``); every command that reads settings does so
through ``read_cli_settings(kind)``: the environment first, then the chosen profile, then defaults. The
file is read only when a command needs settings, so a run that needs none never fails over a profile.
Light at import time: help and completion import this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cxone_eventbridge.cli import render

if TYPE_CHECKING:
    from cxone_eventbridge.config import SettingsT
    from cxone_eventbridge.profiles import Profile


@dataclass
class _Choice:
    name: str | None = None


_CHOICE = _Choice()

PROFILE_HELP = (
    "A profile (tenant) of the user config file, $XDG_CONFIG_HOME/cxeb/config.toml: its base URL, client, "
    "router URL and ingest key, under flags and environment variables."
)


def choose(name: str | None) -> None:
    """Record this run's profile (None: none)."""
    _CHOICE.name = name or None


def chosen() -> str | None:
    """This run's profile name, if any."""
    return _CHOICE.name


def chosen_profile() -> Profile | None:
    """The chosen profile, read and checked; exit 2 naming the problem (an unknown name lists the known ones)."""
    if _CHOICE.name is None:
        return None
    from cxone_eventbridge.exceptions import ConfigurationError
    from cxone_eventbridge.profiles import default_path, load_profiles

    path = default_path(os.environ)
    if not path.exists():
        render.fail(
            f"--profile {_CHOICE.name}: there is no user config file at {path} "
            "(see the README's Configuration section)",
            render.EXIT_INVALID_INPUT,
        )
    try:
        profiles = load_profiles(path)
        profile = profiles.get(_CHOICE.name)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    for warning in profiles.warnings:
        render.warn(warning)
    return profile


def read_cli_settings(kind: type[SettingsT]) -> SettingsT:
    """``kind`` from the environment and this run's profile; ConfigurationError naming what is invalid."""
    from cxone_eventbridge.config import read_settings

    return read_settings(kind, profile=chosen_profile())
