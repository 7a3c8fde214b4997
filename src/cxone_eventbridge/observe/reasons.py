"""Why an attempt failed, as one of a fixed set of labels: the ``reason`` of retry and dead-letter metrics.

A metric label with free text in it (an error message, a host name, a status line) gives every new
message its own time series; Prometheus then holds an unbounded number of them. So the metrics never
label with the error itself: these pure functions map an attempt's status code and error description
onto a closed vocabulary, and the free text stays in logs, ``router status`` and the audit log.

===================  =============================================================================
reason               meaning
===================  =============================================================================
``status_3xx``       the endpoint answered with a redirect (redirects are not followed)
``status_408``       408 Request Timeout
``status_410``       410 Gone (the target is disabled)
``status_429``       429 Too Many Requests
``status_4xx``       any other 4xx (permanent unless configured retryable)
``status_5xx``       any 5xx
``status_other``     any other status (1xx, 2xx where a failure was recorded, nonsense)
``timeout``          no full answer within the target's ``retryPolicy.timeoutMs``
``dns``              the endpoint's host name did not resolve
``tls``              the TLS handshake or certificate check failed
``connect``          the connection was refused, reset or closed before an answer
``egress_denied``    the SSRF guard refused the destination; nothing was sent
``auth_failed``      the target's OAuth token endpoint gave no token (nothing was sent to the target)
``target_removed``   the target was removed while the delivery waited (replayable if it comes back)
``expired``          the event outlived ``max_event_age_s`` before it was delivered
``other``            anything else (an unexpected failure inside the router)
===================  =============================================================================
"""

from __future__ import annotations

import re
from enum import StrEnum


class FailureReason(StrEnum):
    """The closed set of ``reason`` label values."""

    STATUS_3XX = "status_3xx"
    STATUS_408 = "status_408"
    STATUS_410 = "status_410"
    STATUS_429 = "status_429"
    STATUS_4XX = "status_4xx"
    STATUS_5XX = "status_5xx"
    STATUS_OTHER = "status_other"
    TIMEOUT = "timeout"
    DNS = "dns"
    TLS = "tls"
    CONNECT = "connect"
    EGRESS_DENIED = "egress_denied"
    AUTH_FAILED = "auth_failed"
    TARGET_REMOVED = "target_removed"
    EXPIRED = "expired"
    OTHER = "other"


# Lowercase fragments of the error descriptions the delivery client writes (router/http_transport.py) and
# of the OS messages they quote; checked in this order, so a TLS error while connecting is "tls" and a
# refused destination (whose message says "refused") is "egress_denied".
_ERROR_FRAGMENTS: tuple[tuple[tuple[str, ...], FailureReason], ...] = (
    (("token endpoint",), FailureReason.AUTH_FAILED),  # router/target_tokens.py: TOKEN_FAILURE_PREFIX
    (("ssrf guard", "not the endpoint's canonical host"), FailureReason.EGRESS_DENIED),
    (("timeout", "timed out"), FailureReason.TIMEOUT),
    (("tls", "ssl", "certificate"), FailureReason.TLS),
    (
        (
            "name or service not known",
            "temporary failure in name resolution",
            "nodename nor servname",
            "no address associated",
            "name resolution",
            "does not resolve",
            "dns",
        ),
        FailureReason.DNS,
    ),
    (("connect", "refused", "reset", "closed", "unreachable", "broken pipe"), FailureReason.CONNECT),
)


_HOST_PORT = re.compile(r"(?:connecting to|with) \S+?:\d+|destination \S+")


def status_reason(status: int) -> FailureReason:
    """The label of a failed attempt that got an HTTP answer."""
    if status == 408:
        return FailureReason.STATUS_408
    if status == 410:
        return FailureReason.STATUS_410
    if status == 429:
        return FailureReason.STATUS_429
    if 300 <= status < 400:
        return FailureReason.STATUS_3XX
    if 400 <= status < 500:
        return FailureReason.STATUS_4XX
    if 500 <= status < 600:
        return FailureReason.STATUS_5XX
    return FailureReason.STATUS_OTHER


def failure_reason(status: int | None, error: str | None) -> FailureReason:
    """The label of one failed attempt: by its status when it got an answer, else by its error description."""
    if status is not None:
        return status_reason(status)
    # The host name is the user's free text: "connecting to tls-timeout.example:443" says nothing.
    text = _HOST_PORT.sub("to host", (error or "").lower())
    for fragments, reason in _ERROR_FRAGMENTS:
        if any(fragment in text for fragment in fragments):
            return reason
    return FailureReason.OTHER


# The dead-letter reasons the queue records (router.queue.DeadLetterReason values) that say all there is.
_FINAL_REASONS = {
    "expired": FailureReason.EXPIRED,
    "gone": FailureReason.STATUS_410,
    "egress_denied": FailureReason.EGRESS_DENIED,
    "auth_failed": FailureReason.AUTH_FAILED,
    "target_removed": FailureReason.TARGET_REMOVED,
}


def dead_letter_reason(reason: str, last_status: int | None, last_error: str | None) -> FailureReason:
    """The label of a dead letter: what made its last attempt fail (or that it expired, or was refused)."""
    final = _FINAL_REASONS.get(reason)
    if final is not None:
        return final
    if last_status is None and last_error is None:
        return FailureReason.OTHER
    return failure_reason(last_status, last_error)
