"""``cxeb router serve --from-api``: keep the running router's targets in step with the control plane.

Every ``interval_s`` the routes table (``GET /api/v2/events/routes``, the only place secrets are read
back) is fetched and compared with what was applied last; additions and changes are upserted into the
router and deletions removed, without a restart; a removed target's pending deliveries are dead-lettered at once
(``target_removed``, replayable), and a changed endpoint receives the pending deliveries from then on
(deliveries name their target, not its URL). A failed fetch keeps the current table (logged), since
routing on a slightly stale table beats routing on none.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from cxone_eventbridge.exceptions import APIError, InputError
from cxone_eventbridge.models import IntegrationTarget, RoutesTable

log = logging.getLogger(__name__)

DEFAULT_SYNC_INTERVAL_S = 30.0


class TargetSink(Protocol):
    """The router operations a sync needs (``EventRouter`` provides them)."""

    def upsert_target(self, target: IntegrationTarget) -> None: ...

    async def remove_target(self, name: str) -> object: ...


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync changed, by target name."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # targets the router refused (e.g. an unresolved secret); logged

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)


def _fingerprint(target: IntegrationTarget) -> str:
    # Secrets included: a rotated signing secret or auth value is a change the router must pick up.
    wire = target.to_wire(reveal_secrets=True)
    for volatile in ("updatedAt", "createdAt"):
        wire.pop(volatile, None)
    return hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()


class TargetsSync:
    """Applies the routes table's differences to a router, once (``sync_once``) or periodically (``run``)."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[RoutesTable]],
        router: TargetSink,
        *,
        interval_s: float = DEFAULT_SYNC_INTERVAL_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._fetch = fetch
        self._router = router
        self._interval_s = interval_s
        self._sleep = sleep
        self._applied: dict[str, str] = {}
        self.syncs = 0
        self.failures = 0

    async def sync_once(self) -> SyncResult:
        """Fetch the table and apply what changed since the last sync; APIError propagates."""
        table = await self._fetch()
        current = {t.name: t for t in table.items}
        added: list[str] = []
        changed: list[str] = []
        skipped: list[str] = []
        for name, target in current.items():
            fingerprint = _fingerprint(target)
            previous = self._applied.get(name)
            if previous == fingerprint:
                continue
            try:
                self._router.upsert_target(target)
            except InputError as exc:
                # One target the router cannot use (a bad pattern) must not stop the others from syncing;
                # its previous version, if any, keeps routing.
                log.warning("routes sync skipped target %s: %s", name, exc)
                skipped.append(name)
                continue
            (added if previous is None else changed).append(name)
            self._applied[name] = fingerprint
        removed = sorted(set(self._applied) - set(current))
        for name in removed:
            await self._router.remove_target(name)
            del self._applied[name]
        self.syncs += 1
        result = SyncResult(tuple(sorted(added)), tuple(sorted(changed)), tuple(removed), tuple(sorted(skipped)))
        if result.changes:
            log.info(
                "routes synced: %d added, %d changed, %d removed",
                len(result.added),
                len(result.changed),
                len(result.removed),
                extra={"added": list(result.added), "changed": list(result.changed), "removed": list(result.removed)},
            )
        return result

    async def run(self) -> None:
        """Sync every ``interval_s`` until cancelled; failures are logged and the current table kept."""
        while True:
            await self._sleep(self._interval_s)
            try:
                await self.sync_once()
            except APIError as exc:
                self.failures += 1
                log.warning("routes sync failed, keeping the current table: %s", exc)
