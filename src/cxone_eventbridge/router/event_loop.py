"""The event loop for the long-running, I/O-heavy processes: uvloop where it is installed, asyncio's otherwise.

uvloop (libuv, with TLS and transports in C) cut the router's CPU per delivery by about a quarter and
raised the sandbox receiver from about 5,500 to about 6,400 TLS requests/s on the 2-core benchmark
machine (docs/delivery.md, "Performance"). It is a Linux/macOS dependency; where it cannot be imported
(Windows, or a slim install) the standard loop is used and everything still works, only slower.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(*, prefer_uvloop: bool = True) -> LoopFactory | None:
    """uvloop's ``new_event_loop`` when preferred and importable; None means asyncio's default loop."""
    if not prefer_uvloop:
        return None
    try:
        import uvloop  # optional: absent on Windows, where the default loop serves
    except ImportError:
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(factory: LoopFactory | None) -> str:
    """``uvloop`` or ``asyncio``, for benchmark reports and logs."""
    return "asyncio" if factory is None else factory.__module__.split(".", 1)[0]


def run(coro: Coroutine[Any, Any, T], *, prefer_uvloop: bool = True) -> T:
    """``asyncio.run`` on the fastest available loop."""
    with asyncio.Runner(loop_factory=loop_factory(prefer_uvloop=prefer_uvloop)) as runner:
        return runner.run(coro)
