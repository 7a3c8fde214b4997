"""Fault injection: random 5xx, added latency, forced 429 bursts and lost answers, so clients can prove their retries.

A lost answer is the fault idempotency keys exist for: the write is committed, then its answer never
reaches the client (here: a 504, as a gateway gives when its upstream went silent). A client that retries
must not make the change twice.

Injected answers carry ``X-Sandbox-Fault: injected`` so that tests (and people) can tell them from bugs.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from cxone_eventbridge.sandbox.config import SandboxConfig

FAULT_HEADER = "X-Sandbox-Fault"
_FAULT_STATUSES = (500, 502, 503, 504)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOST_ANSWER_STATUS = 504


@dataclass(frozen=True)
class Fault:
    """An injected answer instead of the real one."""

    status: int
    retry_after_s: int | None = None


class FaultInjector:
    """Decides, per API request, whether to answer with an injected fault."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._random = random.Random(config.seed)  # noqa: S311 -- fault injection, not cryptography
        self._count = 0
        self._writes = 0
        self.lost_answers = 0  # how many answers were lost so far
        self._lock = threading.Lock()

    async def delay(self) -> None:
        """Wait the configured ``latency_ms`` (with the config's ``sleep``, which tests replace)."""
        if self._config.latency_ms:
            await self._config.sleep(self._config.latency_ms / 1000)

    def lose_answer(self, method: str) -> bool:
        """Whether this request's answer is lost after it was processed: every Nth write (the 1st, N+1th, ...)."""
        every = self._config.fault_lost_answer_every
        if not every or method.upper() not in WRITE_METHODS:
            return False
        with self._lock:
            self._writes += 1
            lost = (self._writes - 1) % every == 0
            self.lost_answers += lost
            return lost

    def next_fault(self) -> Fault | None:
        """The fault for the next request, if any: a forced 429 first, then a random 5xx."""
        config = self._config
        with self._lock:
            index = self._count
            self._count += 1
            if config.fault_429_burst:
                position = index % config.fault_429_period if config.fault_429_period else index
                if position < config.fault_429_burst:
                    return Fault(429, config.fault_retry_after_s)
            if config.fault_rate and self._random.random() < config.fault_rate:
                return Fault(self._random.choice(_FAULT_STATUSES))
        return None
