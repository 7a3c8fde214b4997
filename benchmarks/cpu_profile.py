"""Where a delivery's CPU goes, by stage: exclusive CPU time of each stage, measured, not sampled.

The event-loop thread is metered with ``time.thread_time_ns()`` around every step of every task (a task
factory wraps each task's coroutine) and around chosen functions (patched on their classes for the
profiled phase only); a stage's time is exclusive: what a nested metered stage used is taken off its
parent. Whatever the loop thread did outside any task (uvloop, socket and future callbacks, the wake-ups
the HTTP client's runtime thread schedules) is the rest of the loop thread's time. The other threads are
read from ``/proc/self/task/*/stat`` and named by what they run: the HTTP client's runtime thread
(pyreqwest's tokio thread) and the queue's commit thread (SQLite's COMMIT and fsync).

Metering costs two clock reads per task step; the profiled phase therefore reports its own total, and the
benchmark's headline CPU figure comes from an unprofiled phase.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_now = time.thread_time_ns

# Stages of the loop thread, by the metered task's coroutine or the metered function.
TASK_STAGES = {
    "Dispatcher._attempt": "dispatcher: attempt bookkeeping, circuit",
    "Dispatcher._run": "dispatcher: lease loop",
    "Dispatcher._release": "dispatcher: lease loop",
    "GroupCommitExecutor._commit_loop": "queue: SQLite statements on the loop",
}
OTHER_TASKS = "other tasks (benchmark producer, housekeeping)"
LOOP_REST = "event loop, I/O and future callbacks (uvloop)"


class StageMeter:
    """Accumulates exclusive thread CPU per stage on the thread that runs the event loop."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = defaultdict(int)
        self._child_ns = 0  # time used by metered stages nested in the one now running

    def run(self, stage: str, call: Callable[[], Any]) -> Any:
        saved, self._child_ns = self._child_ns, 0
        started = _now()
        try:
            return call()
        finally:
            elapsed = _now() - started
            self.ns[stage] += elapsed - self._child_ns
            self._child_ns = saved + elapsed

    def coroutine(self, stage: str, coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
        """``coro`` with each of its steps metered to ``stage``."""
        return _Metered(self, stage, coro).run()

    def function(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def metered(*args: Any, **kwargs: Any) -> Any:
            return self.run(stage, lambda: function(*args, **kwargs))

        return metered

    def async_function(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def metered(*args: Any, **kwargs: Any) -> Any:
            return self.coroutine(stage, function(*args, **kwargs))

        return metered


class _Metered:
    def __init__(self, meter: StageMeter, stage: str, coro: Coroutine[Any, Any, Any]) -> None:
        self.meter, self.stage, self.coro = meter, stage, coro

    async def run(self) -> Any:
        return await self

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, meter, stage = self.coro, self.meter, self.stage
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                if error is None:
                    yielded = meter.run(stage, lambda v=value: coro.send(v))
                else:
                    yielded = meter.run(stage, lambda e=error: coro.throw(e))
            except StopIteration as stop:
                return stop.value
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # passed into the coroutine, as await would
                value, error = None, exc


def _task_stage(coro: Any) -> str:
    name = getattr(coro, "__qualname__", "")
    return TASK_STAGES.get(name, OTHER_TASKS)


@contextmanager
def metered_loop(meter: StageMeter) -> Iterator[None]:
    """Meter every task created on the running loop while the block runs."""
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return asyncio.Task(meter.coroutine(_task_stage(coro), coro), loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        yield
    finally:
        loop.set_task_factory(previous)


@contextmanager
def patched(owner: Any, name: str, replacement: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Replace ``owner.name`` with ``replacement(original)`` while the block runs."""
    original = getattr(owner, name)
    setattr(owner, name, replacement(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, keyed by ``name:tid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    result: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        result[f"{name}:{task.name}"] = (int(fields[11]) + int(fields[12])) / ticks
    return result


def thread_stage(key: str, loop_tid: int) -> str:
    name, tid = key.rsplit(":", 1)
    if int(tid) == loop_tid:
        return "loop thread"
    # Python (3.11-3.13) does not name its threads for the OS: look the thread up by its native id.
    python_names = {thread.native_id: thread.name for thread in threading.enumerate()}
    name = python_names.get(int(tid), name)
    if name.startswith("cxeb-queue"):
        return "queue: COMMIT + fsync (its worker thread)"
    if name.startswith(("tokio", "pyreqwest")):
        return "HTTP client runtime thread (Rust: TLS, HTTP/1.1, sockets)"
    return f"other threads ({name})"


def loop_thread_id() -> int:
    return threading.get_native_id()
