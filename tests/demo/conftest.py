"""Fixtures for the demo tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_package_logger() -> Iterator[None]:
    """The CLI's root callback reconfigures the package logger; put it back so later tests see the default."""
    logger = logging.getLogger("cxone_eventbridge")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
