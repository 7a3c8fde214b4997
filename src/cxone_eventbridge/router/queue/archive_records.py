"""What the event archive keeps and hands out: attempts, archived events, an event's history, replay jobs.

Frozen records, the same for every backend (see :class:`~.protocols.EventArchive`). A replay re-sends an
archived event as a *new* event of its own, whose id names the replay and the original
(:func:`replay_event_id`): its deliveries therefore have their own ids, it is deduplicated like any event
(a replay resumed after a restart sends nothing twice), and the delivery path can tell a replay from its
id alone, at no cost to other deliveries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

REPLAY_PREFIX: Final = "rpl_"
_REPLAY_ID_CHARS: Final = len(REPLAY_PREFIX) + 16
_SEPARATOR: Final = "/"


def new_replay_id() -> str:
    """A fresh replay job id: ``rpl_`` and 16 hex digits."""
    return REPLAY_PREFIX + uuid.uuid4().hex[:16]


def replay_event_id(replay_id: str, original_event_id: str) -> str:
    """The id of the event a replay sends for ``original_event_id`` (the same on every run of the job)."""
    return f"{replay_id}{_SEPARATOR}{original_event_id}"


def replay_of(event_id: str) -> tuple[str, str] | None:
    """``(replay id, original event id)`` when ``event_id`` is a replay's, else None (a prefix check)."""
    if (
        event_id.startswith(REPLAY_PREFIX)
        and event_id[_REPLAY_ID_CHARS : _REPLAY_ID_CHARS + 1] == _SEPARATOR
        and len(event_id) > _REPLAY_ID_CHARS + 1
    ):
        return event_id[:_REPLAY_ID_CHARS], event_id[_REPLAY_ID_CHARS + 1 :]
    return None


class AttemptRecord(NamedTuple):
    """One delivery attempt as the history keeps it, on the delivery ``delivery_key`` names (the queue's
    handle). ``category`` is an ``observe.reasons`` label for a failed attempt (None for a success);
    ``error`` the client's own description (never a secret). A tuple: one is made per attempt."""

    delivery_key: str
    attempt: int
    at: float
    outcome: str
    status: int | None
    latency_s: float
    category: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """An event kept by the archive, as a replay reads it; ``seq`` orders events accepted at one time."""

    seq: int
    event_id: str
    body: bytes
    priority: int
    accepted_at: float


@dataclass(frozen=True, slots=True)
class DeliveryHistory:
    """One delivery of an event (or of one of its replays) and its attempts, oldest first.

    ``replay_id`` names the replay that made it (None for the original delivery); ``state`` is a
    :class:`~.records.DeliveryState` label."""

    delivery_id: str
    target: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    reason: str | None
    done_at: float | None
    replay_id: str | None
    event_id: str
    history: tuple[AttemptRecord, ...]


@dataclass(frozen=True, slots=True)
class EventHistory:
    """An event, each of its deliveries (and its replays'), and every recorded attempt."""

    event_id: str
    body: bytes | None  # None when the event row is gone and only a replay's deliveries are left
    priority: int | None
    accepted_at: float | None
    replay_of: str | None  # the original event's id, when this one is a replay's
    deliveries: tuple[DeliveryHistory, ...]


class ReplayState(StrEnum):
    """Where a replay job is. ``running`` jobs resume when a router starts after a stop or a crash."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """A replay of archived events accepted in ``[since, until)``, and how far it has got.

    ``cursor`` is the (accepted_at, seq) of the last archived event handled; a resumed job continues after
    it. ``scanned`` counts archived events read, ``replayed`` those re-sent (they matched a target now),
    ``deliveries`` the deliveries created. ``pattern`` is the JSON text of an extra event pattern."""

    replay_id: str
    since: float
    until: float
    target: str | None
    pattern: str | None
    rate_per_s: float
    state: ReplayState
    created_at: float
    cursor_at: float | None = None
    cursor_seq: int | None = None
    scanned: int = 0
    replayed: int = 0
    deliveries: int = 0
    total: int | None = None  # archived events in the window when the job started
    finished_at: float | None = None
    error: str | None = None
    runner: str | None = None
    heartbeat_at: float | None = None
