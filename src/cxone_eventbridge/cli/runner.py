"""Run a command's coroutine at the CLI's edge, turning expected errors into one message and an exit code.

Input errors exit 2, including the server's 422 (the input it was sent is invalid); API, network and runtime
errors exit 1. No traceback for anything expected.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.exceptions import APIError, CxebError, InputError, UnprocessableEntityError

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], *, fast_loop: bool = False) -> T:
    """``asyncio.run`` with the CLI's error handling.

    ``fast_loop`` is for the long-running servers: uvloop if installed, and fewer garbage collections.
    """
    # asyncio (with ssl, ~25 ms) only once a command runs: every cli module imports this one, help included.
    import asyncio

    from cxone_eventbridge import runtime

    try:
        if fast_loop:
            return runtime.run(coro, tune_gc=True)
        return asyncio.run(coro)
    except (InputError, UnprocessableEntityError) as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    except APIError as exc:
        render.fail(str(exc), render.EXIT_ERROR)
    except CxebError as exc:
        render.fail(str(exc), render.EXIT_ERROR)
    except KeyboardInterrupt:
        render.error("interrupted")
        raise typer.Exit(130) from None
