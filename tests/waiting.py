"""Waiting on what a test observes, with a hang guard that is never a speed bound.

Tests wait on an event where the code under test publishes one (an observer's ledger, a held request).
``until`` is for the conditions nothing announces: a server's counter, a queue's figures read through its
API, a line a subprocess writes. It checks the condition again after yielding to the loop for a moment,
so the servers the test runs in the same loop keep serving; the test's assertion is the condition itself,
never how long it took. ``HANG_GUARD_S`` only ends a test that would otherwise hang: it is far above
anything a loaded machine needs, because a guard that trips under load is a timed assertion in disguise.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

HANG_GUARD_S = 120.0
_RECHECK_S = 0.01  # how long to yield between checks; it bounds the reaction, it proves nothing


async def until(condition: Callable[[], bool | Awaitable[bool]], *, limit_s: float = HANG_GUARD_S) -> None:
    """Return once ``condition()`` (plain or async) is true; TimeoutError after ``limit_s`` as a hang guard."""
    async with asyncio.timeout(limit_s):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(_RECHECK_S)
