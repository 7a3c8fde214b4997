"""Why a target is held or its circuit open, and when it probes next, in words for ``cxeb router status``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def circuit_note(row: dict[str, Any], *, now: float) -> str | None:
    """One line about a target whose circuit is not closed (None when it is closed).

    ``row`` is one of ``GET /v1/status``'s ``targets``: ``circuit``, ``circuitUntil`` (ISO-8601 time of the
    next probe while open) and ``circuitReason``.
    """
    state = row.get("circuit", "closed")
    if state == "closed":
        return None
    why = row.get("circuitReason")
    if state == "half_open":
        text = f"circuit of {row['target']} is half-open: the next delivery is the probe"
    else:
        text = f"circuit of {row['target']} is open"
        until = row.get("circuitUntil")
        if until is not None:
            when = datetime.fromisoformat(until)
            text += f", next probe in {max(0.0, when.timestamp() - now):.1f} s (at {when.astimezone(UTC):%H:%M:%SZ})"
    return f"{text}; {why}" if why else text


def hold_note(row: dict[str, Any]) -> str | None:
    """One line about a target whose deliveries the queue holds (``hold``: paused, gone); None otherwise."""
    name, hold = row["target"], row.get("hold")
    if hold == "paused":
        return f"target {name} is paused: its deliveries wait in the queue (`cxeb router resume {name}`)"
    if hold is not None:
        return f"target {name} is disabled ({hold}): its deliveries wait in the queue (`cxeb router enable {name}`)"
    return None
