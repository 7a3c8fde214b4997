"""The long-running processes' event loop: uvloop when installed, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
import gc
import importlib.util

import pytest

from cxone_eventbridge import runtime


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_uvloop_when_it_is_installed() -> None:
    """With uvloop importable, run() executes the coroutine on a uvloop loop and returns its result."""
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed on this platform")
    assert runtime.run(_loop_module()).startswith("uvloop")
    assert runtime.loop_name(runtime.loop_factory()) == "uvloop"


def test_run_falls_back_to_the_standard_loop() -> None:
    """Without uvloop (here: not preferred) run() uses asyncio's default loop, and names it 'asyncio'."""
    assert runtime.run(_loop_module(), prefer_uvloop=False).startswith("asyncio")
    assert runtime.loop_factory(prefer_uvloop=False) is None
    assert runtime.loop_name(None) == "asyncio"


def test_tuned_gc_collects_less_often_and_restores_the_settings() -> None:
    """Inside tuned_gc() generation 0 is collected every 50,000 allocations; afterwards the old settings are back."""
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with runtime.tuned_gc():
        assert gc.get_threshold()[0] == runtime.GC_GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
