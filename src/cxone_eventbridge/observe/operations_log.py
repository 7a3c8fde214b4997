"""What operators act on, as single structured log lines: circuit changes and targets disabled or enabled.

An observer of the router's bus. Each line carries ``operation`` and ``target`` (plus ``state``,
``until`` and ``reason`` for a circuit) as ``extra`` fields, so ``cxeb --log-format json`` gives one JSON
object per change that a log pipeline can alert on. Replays, purges and queue migrations are logged
where they happen (``router.http_routes`` and ``router.queue.migrations``) with the same ``operation``
field.

Subscribe it after the ``StatusTracker`` it is given: an open circuit's line quotes the tracker's
account of why it opened ("5 failed attempts in a row, the last: status 503").
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from cxone_eventbridge.observe.events import CircuitStateChanged, ObservedEvent, TargetChanged
from cxone_eventbridge.observe.status import StatusTracker

_log = logging.getLogger("cxone_eventbridge.operations")
_TARGET_ACTIONS = frozenset({"disabled", "enabled", "paused", "resumed", "probed"})


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OperationsLog:
    """Logs circuit changes and target disable/enable/pause/resume/probe; ``observe`` goes on the router's bus."""

    def __init__(self, status: StatusTracker | None = None) -> None:
        self._status = status

    def observe(self, event: ObservedEvent) -> None:
        if isinstance(event, CircuitStateChanged):
            self._circuit(event)
        elif isinstance(event, TargetChanged) and event.action in _TARGET_ACTIONS:
            reason = event.details.get("reason")
            # At warning, the router's default level: an operator's steering is seen without -v.
            _log.warning(
                "target %s %s%s",
                event.target,
                event.action,
                f" ({reason})" if reason else "",
                extra={"operation": f"target_{event.action}", "target": event.target, "reason": reason},
            )

    def _circuit(self, event: CircuitStateChanged) -> None:
        fields: dict[str, object] = {"operation": "circuit", "target": event.target, "state": event.state}
        if event.state != "open":
            _log.info("circuit of target %s is %s", event.target, event.state.replace("_", "-"), extra=fields)
            return
        tracked = self._status.get(event.target) if self._status is not None else None
        reason = tracked.circuit_reason if tracked is not None else None
        until = _iso(event.until) if event.until is not None else None
        fields.update(until=until, reason=reason)
        _log.warning(
            "circuit of target %s opened%s%s",
            event.target,
            f" until {until}" if until else "",
            f": {reason}" if reason else "",
            extra=fields,
        )
