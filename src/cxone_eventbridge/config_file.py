"""What every TOML configuration file of ours shares: the router's ``--config`` file and the user's profiles.

- ``read_toml(path)`` parses a file; a syntax error or a missing file is a ConfigurationError naming it.
- ``key_line(text, key, table)`` is the line a key is written on, for messages of the form ``FILE:LINE: key: ...``
  (tomllib keeps no positions).
- ``unknown_key(key, known)`` says so, with "did you mean" when a known key is close.
- ``resolve_reference(value, environ, where)``: ``${env:NAME}`` references, as in targets files.
- ``value_type_problem(annotation, value)``: TOML values are typed, so ``true`` is no number and ``5`` no
  string; the message says what was wanted and what was written.
- ``exposure_warning(path, literal_secrets)`` is ssh's rule for a file holding a secret: readable by group
  or others is worth a warning.
"""

from __future__ import annotations

import difflib
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args

from cxone_eventbridge import secret_refs
from cxone_eventbridge.exceptions import ConfigurationError


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed file and its text; ConfigurationError naming the file (and line) when it cannot be."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigurationError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise ConfigurationError(f"{path}: cannot be read: permission denied") from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigurationError(f"{path}: not UTF-8 text (line {line})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None


def key_line(text: str, key: str, table: str | None = None) -> int:
    """The 1-based line that sets ``key`` (inside ``[table]`` when given), or opens it as a table; 0 if none."""
    current: str | None = None
    own_table = f"{table}.{key}" if table else key
    key_pattern = re.compile(rf"""\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    header = re.compile(r"\s*\[\s*([^\]]+?)\s*\]")
    for number, line in enumerate(text.splitlines(), start=1):
        if match := header.match(line):
            current = match.group(1).replace('"', "").replace("'", "").replace(" ", "")
            if current == own_table:
                return number
            continue
        if current == table and key_pattern.match(line):
            return number
    return 0


def where(path: Path, text: str, key: str, table: str | None = None) -> str:
    """``FILE:LINE: key`` (``FILE: key`` when the line is unknown), the start of every message about a key."""
    line = key_line(text, key, table)
    shown = f"{table}.{key}" if table else key
    return f"{path}:{line}: {shown}" if line else f"{path}: {shown}"


def unknown_key(key: str, known: Iterable[str]) -> str:
    """``is not a known key`` with the closest known key, if any is close."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"is not a known key{hint}"


def reference_problem(value: str) -> str | None:
    """Why ``value`` is a malformed reference, or None.

    Stricter than targets files: in a config file a value that starts with ``${`` and is not one whole
    reference (``${env:KEY`` without its brace) is a typo, never an intended literal.
    """
    if (problem := secret_refs.reference_syntax_error(value)) is not None:
        return problem
    if value.startswith("${") and not secret_refs.is_reference(value):
        return f"malformed secret reference {value!r}: write ${{env:NAME}} with a variable name"
    return None


def resolve_reference(value: str, environ: Mapping[str, str], place: str) -> str:
    """``value`` with its ``${env:NAME}`` reference resolved; ConfigurationError for a malformed or unset one."""
    if (problem := reference_problem(value)) is not None:
        raise ConfigurationError(f"{place}: {problem}")
    resolved = secret_refs.resolve(value, environ)
    if resolved is None:
        raise ConfigurationError(f"{place}: {value} names an environment variable that is not set")
    return resolved


def toml_kind(value: Any) -> str:
    """What a TOML value is, in TOML's words, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a table" if isinstance(value, dict) else type(value).__name__


def _fits(annotation: Any, value: Any) -> bool:
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)  # strings, paths, enums and secrets are written as TOML strings


_WANTED = {bool: "true or false", int: "an integer", float: "a number"}
_WANTED_ITEMS = {bool: "booleans", int: "integers", float: "numbers"}


def value_type_problem(annotation: Any, value: Any) -> str | None:
    """``must be an integer, not a string`` when ``value`` is not of the type ``annotation`` is written as, else None.

    ``annotation`` is the setting's own (``X | None`` is X); anything but bool, int and float is a TOML string.
    """
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(args) == 1 and type(None) in get_args(annotation):
        annotation = args[0]
    if _fits(annotation, value):
        return None
    return f"must be {_WANTED.get(annotation, 'a string')}, not {toml_kind(value)}"


def list_type_problem(item_annotation: Any, items: list[Any]) -> str | None:
    """``must be a list of strings, not an array holding an integer``, or None when every item fits."""
    wrong = next((item for item in items if not _fits(item_annotation, item)), None)
    if wrong is None:
        return None
    return f"must be a list of {_WANTED_ITEMS.get(item_annotation, 'strings')}, not an array holding {toml_kind(wrong)}"


def exposure_warning(path: Path, literal_secrets: list[str]) -> str | None:
    """A warning when ``path`` holds literal secrets (the keys given) and group or others may read it."""
    if not literal_secrets:
        return None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    keys = ", ".join(literal_secrets)
    return (
        f"{path} holds a secret in plain text ({keys}) and is readable by group or others "
        f"(mode {mode:04o}): run `chmod 600 {path}`, or write the secret as a ${{env:NAME}} reference"
    )
