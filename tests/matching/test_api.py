"""The public surface of cxone_eventbridge.matching."""

from __future__ import annotations

import subprocess
import sys
import types

import cxone_eventbridge.matching as matching
from cxone_eventbridge.exceptions import InputError


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name the package exports, sorted."""
    values = vars(matching)
    public = {
        name
        for name, value in values.items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # the submodules themselves
        and (name.isupper() or getattr(value, "__module__", "").startswith("cxone_eventbridge"))
    }
    # isort-style, as ruff's RUF022 keeps it: constants, then classes, then functions, each alphabetical.
    assert matching.__all__ == sorted(matching.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert set(matching.__all__) == public


def test_errors_are_input_errors() -> None:
    """Invalid patterns and events are input errors (CLI exit code 2); patterns are also ValueErrors."""
    assert issubclass(matching.InvalidPatternError, InputError)
    assert issubclass(matching.InvalidPatternError, ValueError)
    assert issubclass(matching.InvalidEventError, InputError)


def test_the_pattern_language_loads_without_the_wire_models() -> None:
    """matching imports nothing from models at run time, so models can use it with no import cycle."""
    code = "import sys, cxone_eventbridge.matching; print('cxone_eventbridge.models' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
