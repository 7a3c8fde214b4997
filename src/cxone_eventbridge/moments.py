"""Moments in time as people write them on a command line: ISO-8601, or relative to now (``-2h``).

Pure, so the CLI can check ``--since`` / ``--until`` before it sends anything, and the router can read the
same forms in its API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

_RELATIVE: Final = re.compile(r"-\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNIT_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
FORMS: Final = "an ISO-8601 time (2026-11-30T12:00:00Z), 'now', or a time before now such as -90s, -30m, -2h, -7d"


def parse_moment(text: str, *, now: float) -> float:
    """``text`` as Unix seconds: ISO-8601 (a time without a zone is UTC), ``now``, or ``-N`` s/m/h/d/w before
    ``now``. ValueError saying which forms are understood otherwise."""
    value = text.strip()
    if value.lower() == "now":
        return now
    relative = _RELATIVE.fullmatch(value.lower())
    if relative is not None:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; use {FORMS}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float) -> str:
    """Unix seconds as an ISO-8601 UTC string with a ``Z`` (milliseconds kept when there are any)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")
