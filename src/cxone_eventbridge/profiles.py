"""Profiles: several tenants' connection settings in one user config file, chosen by ``--profile NAME``.

The file is ``$XDG_CONFIG_HOME/cxeb/config.toml`` (``~/.config/cxeb/config.toml`` when XDG_CONFIG_HOME is
unset or not absolute); each profile is a table::

    [profiles.tenant-a]
    base-url = "https://api.example.com"
    client-id = "tenant-a-client"
    client-secret = "${env:TENANT_A_SECRET}"   # a reference (recommended) or the secret itself
    router-url = "http://127.0.0.1:8790"       # optional: for the cxeb router commands
    ingest-key = "${env:TENANT_A_INGEST_KEY}"  # optional

A key is a setting's name in kebab-case: every field of ``Settings`` (``CXONE_*``) and ``RouterSettings``
(``CXEB_*``), read from the models themselves, so a new setting is a valid key at once. Precedence, per
setting: flags > environment variables > the profile > defaults (``config.read_settings``). A profile that
holds a secret in plain text, in a file that group or others may read, draws a warning, as ssh does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import SecretStr

from cxone_eventbridge import secret_refs
from cxone_eventbridge.config import RouterSettings, Settings, SettingsT
from cxone_eventbridge.config_file import (
    exposure_warning,
    read_toml,
    reference_problem,
    resolve_reference,
    unknown_key,
    value_type_problem,
    where,
)
from cxone_eventbridge.exceptions import ConfigurationError

_KINDS: tuple[type[Settings] | type[RouterSettings], ...] = (Settings, RouterSettings)
# Every key a profile may hold, with the settings model and field it sets.
PROFILE_KEYS: dict[str, tuple[type[Settings] | type[RouterSettings], str]] = {
    name.replace("_", "-"): (kind, name) for kind in _KINDS for name in kind.model_fields
}


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


SECRET_KEYS = frozenset(
    key for key, (kind, name) in PROFILE_KEYS.items() if _is_secret(kind.model_fields[name].annotation)
)
_TABLE = "profiles"


def _annotation(key: str) -> Any:
    kind, name = PROFILE_KEYS[key]
    return kind.model_fields[name].annotation


def default_path(environ: Mapping[str, str]) -> Path:
    """Where the user config file is: XDG's config home (an absolute XDG_CONFIG_HOME) or ~/.config."""
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path(environ.get("HOME") or Path.home()) / ".config"
    return base / "cxeb" / "config.toml"


@dataclass(frozen=True)
class Profile:
    """One profile as written (references unresolved until its settings are read)."""

    name: str
    path: Path
    text: str = field(repr=False)
    raw: dict[str, Any] = field(repr=False)

    def place(self, key: str) -> str:
        """``FILE:LINE: profiles.NAME.key``, for messages about one of its keys."""
        return where(self.path, self.text, key, f"{_TABLE}.{self.name}")

    def values_for(self, kind: type[SettingsT], environ: Mapping[str, str]) -> dict[str, Any]:
        """The fields of ``kind`` this profile sets, by field name, references resolved."""
        values: dict[str, Any] = {}
        for key, raw in self.raw.items():
            key_kind, name = PROFILE_KEYS[key]
            if key_kind is kind:
                values[name] = resolve_reference(raw, environ, self.place(key)) if isinstance(raw, str) else raw
        return values

    def field_place(self, name: str) -> str:
        """``place`` of the key that sets the field ``name``."""
        return self.place(name.replace("_", "-"))

    def described(self) -> dict[str, str]:
        """Every key with its value, secrets as their reference or ``(plain text)``: safe to print."""
        return {key: describe_value(key, value) for key, value in self.raw.items()}


def describe_value(key: str, value: Any) -> str:
    """A value fit to print: a secret shows only its ``${env:NAME}`` reference, or that it is in plain text."""
    if key in SECRET_KEYS:
        return value if isinstance(value, str) and secret_refs.is_reference(value) else "(plain text)"
    return str(value)


@dataclass(frozen=True)
class ProfilesFile:
    """The user config file's profiles, checked; ``warnings`` to print (secrets a group or others may read)."""

    path: Path
    profiles: dict[str, Profile]
    warnings: tuple[str, ...] = ()

    def get(self, name: str) -> Profile:
        """The profile ``name``; ConfigurationError naming the known ones when there is none."""
        if name in self.profiles:
            return self.profiles[name]
        known = ", ".join(sorted(self.profiles)) or "none"
        raise ConfigurationError(f"unknown profile {name!r} in {self.path}; known profiles: {known}")


def load_profiles(path: Path) -> ProfilesFile:
    """Read and check the user config file; ConfigurationError with every problem (file, line, key)."""
    if not path.exists():
        return ProfilesFile(path=path, profiles={})
    data, text = read_toml(path)
    problems: list[str] = []
    for key in data:
        if key != _TABLE:
            problems.append(f"{where(path, text, key)} {unknown_key(key, [_TABLE])}")
    tables = data.get(_TABLE, {})
    if not isinstance(tables, dict):
        raise ConfigurationError(f"{where(path, text, _TABLE)}: must be tables: [profiles.NAME]")
    profiles: dict[str, Profile] = {}
    literal: list[str] = []
    for name, raw in tables.items():
        if not isinstance(raw, dict):
            problems.append(f"{where(path, text, name, _TABLE)}: a profile is a table: [profiles.{name}]")
            continue
        profile = Profile(name=name, path=path, text=text, raw=dict(raw))
        for key, value in raw.items():
            if key not in PROFILE_KEYS:
                problems.append(f"{profile.place(key)} {unknown_key(key, PROFILE_KEYS)}")
            elif isinstance(value, dict | list):
                problems.append(f"{profile.place(key)}: must be a single value")
            elif problem := value_type_problem(_annotation(key), value):
                problems.append(f"{profile.place(key)}: {problem}")
            elif isinstance(value, str) and (syntax := reference_problem(value)):
                problems.append(f"{profile.place(key)}: {syntax}")
            elif key in SECRET_KEYS and not secret_refs.is_reference(str(value)):
                literal.append(f"{_TABLE}.{name}.{key}")
        profiles[name] = profile
    if problems:
        raise ConfigurationError("\n".join(problems))
    warning = exposure_warning(path, literal)
    return ProfilesFile(path=path, profiles=profiles, warnings=(warning,) if warning else ())
