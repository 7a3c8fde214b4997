"""``${env:NAME}`` references: how targets files keep secrets out of the file itself.

A value that is exactly one reference is resolved from the environment by commands that send it; a
value that merely contains ``${`` is plain text (and draws the plain-text warning).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
_LOOKS_LIKE_REFERENCE = re.compile(r"^\$\{.*\}$")


def reference_name(value: str) -> str | None:
    """The variable a ``${env:NAME}`` reference names, or None when the value is not a reference."""
    match = _REFERENCE.match(value)
    return match.group(1) if match else None


def is_reference(value: str) -> bool:
    """True when the value is one well-formed ``${env:NAME}`` reference."""
    return _REFERENCE.match(value) is not None


def reference_syntax_error(value: str) -> str | None:
    """A message when the value looks like a reference but is malformed (``${NAME}``, ``${env:}``)."""
    if _LOOKS_LIKE_REFERENCE.match(value) and not is_reference(value):
        return f"malformed secret reference {value!r}: write ${{env:NAME}} with a variable name"
    return None


def make_reference(name: str) -> str:
    """The reference text for a variable name."""
    return f"${{env:{name}}}"


def resolve(value: str, environ: Mapping[str, str]) -> str | None:
    """The value with its reference resolved; None when the variable is unset. Plain text passes through."""
    name = reference_name(value)
    if name is None:
        return value
    return environ.get(name)
