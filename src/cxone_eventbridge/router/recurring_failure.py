"""A failure that repeats while its cause lasts (a full disk under the queue), logged once per change.

The dispatcher polls the queue every 250 ms; with the queue's disk full each poll failed and logged an
error with a traceback, burying everything else in the log. A ``RecurringFailure`` logs an error (without
a traceback: the cause is the storage, not the code) when the failure starts, counts the failures while
it lasts, and logs a warning with that count when the operation works again. ``storage_full`` tells the
router's readiness check whether the current failure is a full queue.
"""

from __future__ import annotations

import logging

from cxone_eventbridge.exceptions import QueueFullError


class RecurringFailure:
    """The state of one recurring failure (``what`` says what fails, e.g. "the delivery queue")."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self._log = logger
        self.failures = 0  # while the current failure lasts
        self.error: BaseException | None = None  # the latest, while failing

    @property
    def failing(self) -> bool:
        return self.error is not None

    @property
    def storage_full(self) -> bool:
        """Failing because the storage is full."""
        return isinstance(self.error, QueueFullError)

    def failed(self, error: BaseException) -> None:
        """One more failure; logged only when it starts the failing state (or its kind changes)."""
        if self.error is None or type(self.error) is not type(error):
            self._log.error(
                "%s fails: %s (logged once; the router retries, and logs again when it works)", self.what, error
            )
        self.error = error
        self.failures += 1

    def succeeded(self) -> None:
        """The operation worked: logged when it ends a failing state."""
        if self.error is not None:
            self._log.warning("%s works again after %d failed attempt(s)", self.what, self.failures)
        self.error = None
        self.failures = 0
