"""Fixtures of the CLI tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets reach the command: a developer's CXONE_*, CXEB_* or XDG_* must not leak in."""
    for name in list(os.environ):
        if name.startswith(("CXONE_", "CXEB_", "XDG_")):
            monkeypatch.delenv(name)
