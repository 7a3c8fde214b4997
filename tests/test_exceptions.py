"""The exception tree: every public error of the package is a CxebError and is drawn in exceptions.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import cxone_eventbridge
from cxone_eventbridge import exceptions


def _public_errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(cxone_eventbridge.__path__, prefix="cxone_eventbridge."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[name] = value
    return found


def test_every_public_error_is_in_the_tree_and_drawn() -> None:
    """Each public exception class defined anywhere in the package derives from CxebError and is drawn."""
    drawing = exceptions.__doc__ or ""
    for name, error in _public_errors().items():
        assert issubclass(error, exceptions.CxebError), f"{error.__module__}.{name} is outside the tree"
        assert re.search(rf"(── |^    ){name}\b", drawing, re.MULTILINE), f"{name} is not drawn in exceptions.py"


def test_every_drawn_error_exists() -> None:
    """The drawing names no class that is gone."""
    drawn = set(re.findall(r"── (\w+)", exceptions.__doc__ or ""))
    assert drawn <= set(_public_errors()) | {"CxebError"}
