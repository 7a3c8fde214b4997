"""Why a circuit is open and when it probes next, in words for ``cxeb router status``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def circuit_note(row: dict[str, Any], *, now: float) -> str | None:
    """One line about a target whose circuit is not closed (None when it is closed).

    ``row`` is one of ``GET /v1/status``'s ``targets``: ``circuit``, ``circuitUntil`` (Unix time of the
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
            at = datetime.fromtimestamp(float(until), UTC).strftime("%H:%M:%SZ")
            text += f", next probe in {max(0.0, float(until) - now):.1f} s (at {at})"
    return f"{text}; {why}" if why else text
