"""A failure that repeats at every poll (a full disk under the queue) is logged once when it starts and once when it ends."""

from __future__ import annotations

import logging

import pytest

from cxone_eventbridge.exceptions import QueueError, QueueFullError
from cxone_eventbridge.router.recurring_failure import RecurringFailure

log = logging.getLogger("test.recurring")


def test_a_failure_repeated_at_every_poll_is_logged_once_then_once_more_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """400 failing polls (100 s at 250 ms) give one error without a traceback; the recovery one warning with the count."""
    failure = RecurringFailure("leasing deliveries from the queue", log)
    full = QueueFullError("the delivery queue's storage is full: database or disk is full")
    with caplog.at_level(logging.INFO, logger="test.recurring"):
        for _ in range(400):
            failure.failed(full)
        assert failure.failing
        assert failure.storage_full
        failure.succeeded()
        failure.succeeded()
    messages = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records]
    assert messages == [
        (
            logging.ERROR,
            "leasing deliveries from the queue fails: the delivery queue's storage is full: database or disk is full "
            "(logged once; the router retries, and logs again when it works)",
            None,
        ),
        (logging.WARNING, "leasing deliveries from the queue works again after 400 failed attempt(s)", None),
    ]
    assert not failure.failing
    assert not failure.storage_full


def test_a_change_in_the_kind_of_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """From 'full' to another queue error is a change of state: logged; only a full storage counts as storage_full."""
    failure = RecurringFailure("queue housekeeping", log)
    with caplog.at_level(logging.ERROR, logger="test.recurring"):
        failure.failed(QueueFullError("full"))
        failure.failed(QueueError("the delivery queue's storage failed: disk I/O error"))
        failure.failed(QueueError("the delivery queue's storage failed: disk I/O error"))
    assert len(caplog.records) == 2
    assert failure.failing
    assert not failure.storage_full
