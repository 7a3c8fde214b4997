"""The retrying request function, driven through a scripted transport for the wire's odd cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from cxone_eventbridge.api import IDEMPOTENCY_HEADER, TARGETS_PATH, CXoneClient
from cxone_eventbridge.exceptions import (
    APIConnectionError,
    APITimeoutError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    UnprocessableEntityError,
)
from cxone_eventbridge.models import IntegrationTarget

from .conftest import CLIENT_SECRET, FIXED_NOW, RecordingSleep, ScriptedControlPlane, target_json

ClientFactory = Callable[..., CXoneClient]
GET_ONE = f"GET {TARGETS_PATH}/tgt_1"
CREATE = f"POST {TARGETS_PATH}"


def _new_target() -> IntegrationTarget:
    return IntegrationTarget.model_validate(
        {"name": "crm-webhook", "endpoint": "https://hooks.example.com/cxone", "authentication": {"type": "none"}}
    )


async def test_retry_after_seconds_is_waited(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A 429 with ``Retry-After: 3`` waits exactly 3 s, then the retry succeeds."""
    control_plane.script(
        GET_ONE,
        httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "rate_limited", "message": "slow down"}),
        httpx.Response(200, json=target_json()),
    )
    async with make_client() as client:
        target = await client.targets.get("tgt_1")
    assert target.id == "tgt_1"
    assert recording_sleep.waits == [3.0]
    assert len(control_plane.api_requests(GET_ONE)) == 2


async def test_retry_after_http_date_is_waited(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A 429 whose ``Retry-After`` is an HTTP date waits until that date (the tutorial crashed on it)."""
    later = format_datetime(FIXED_NOW + timedelta(seconds=7), usegmt=True)
    control_plane.script(
        GET_ONE,
        httpx.Response(429, headers={"Retry-After": later}, json={"error": "rate_limited", "message": "later"}),
        httpx.Response(200, json=target_json()),
    )
    async with make_client() as client:
        await client.targets.get("tgt_1")
    assert recording_sleep.waits == [7.0]


async def test_retry_after_beyond_the_budget_fails_now(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A server asking for a wait longer than ``max_retry_wait_s`` gets a RateLimitError at once, no sleep."""
    control_plane.script(
        GET_ONE, httpx.Response(429, headers={"Retry-After": "600"}, json={"error": "rate_limited", "message": "x"})
    )
    async with make_client(max_retry_wait_s=60.0) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.targets.get("tgt_1")
    assert caught.value.retry_after == 600.0
    assert caught.value.status_code == 429
    assert recording_sleep.waits == []


async def test_5xx_then_success_backs_off_exponentially(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """Two 503s then a 200: two waits that double (base 0.5 s, equal jitter at rng 0.5 -> 0.375, 0.75)."""
    control_plane.script(
        GET_ONE,
        httpx.Response(503, json={"error": "unavailable", "message": "down"}),
        httpx.Response(502),
        httpx.Response(200, json=target_json()),
    )
    async with make_client() as client:
        await client.targets.get("tgt_1")
    assert recording_sleep.waits == [0.375, 0.75]


async def test_connection_reset_is_retried(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A connection reset before any answer is retried, and the caller never sees httpx's error."""
    control_plane.script(GET_ONE, httpx.ReadError("connection reset by peer"), httpx.Response(200, json=target_json()))
    async with make_client() as client:
        target = await client.targets.get("tgt_1")
    assert target.name == "crm-webhook"
    assert len(recording_sleep.waits) == 1


async def test_attempts_are_bounded(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A server that always fails is asked ``max_attempts`` times, then the 5xx is raised as ours."""
    control_plane.script(GET_ONE, httpx.Response(500, json={"error": "internal", "message": "boom"}))
    async with make_client(max_attempts=3) as client:
        with pytest.raises(InternalServerError, match="HTTP 500: internal: boom"):
            await client.targets.get("tgt_1")
    assert len(control_plane.api_requests(GET_ONE)) == 3
    assert len(recording_sleep.waits) == 2


async def test_connection_errors_convert_once_with_cause(
    make_client: ClientFactory, control_plane: ScriptedControlPlane
) -> None:
    """A refused connection becomes APIConnectionError (timeouts APITimeoutError), chained to httpx's error."""
    control_plane.script(GET_ONE, httpx.ConnectError("connection refused"))
    async with make_client(max_attempts=2) as client:
        with pytest.raises(APIConnectionError, match="got no answer") as caught:
            await client.targets.get("tgt_1")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    control_plane.script(GET_ONE, httpx.ReadTimeout("read timed out"))
    async with make_client(max_attempts=1) as client:
        with pytest.raises(APITimeoutError):
            await client.targets.get("tgt_1")


async def test_post_reuses_one_idempotency_key_across_retries(
    make_client: ClientFactory, control_plane: ScriptedControlPlane
) -> None:
    """A create retried after a 503 sends the same Idempotency-Key both times; the next create a new one."""
    control_plane.script(
        CREATE,
        httpx.Response(503, json={"error": "unavailable", "message": "down"}),
        httpx.Response(201, json=target_json()),
    )
    async with make_client() as client:
        await client.targets.create(_new_target())
        await client.targets.create(_new_target())
    keys = [r.headers[IDEMPOTENCY_HEADER] for r in control_plane.api_requests(CREATE)]
    assert len(keys) == 3
    assert keys[0] == keys[1]
    assert keys[2] != keys[0]


async def test_caller_idempotency_key_is_sent(make_client: ClientFactory, control_plane: ScriptedControlPlane) -> None:
    """An explicit ``idempotency_key`` is the one on the wire."""
    control_plane.script(CREATE, httpx.Response(201, json=target_json()))
    async with make_client() as client:
        await client.targets.create(_new_target(), idempotency_key="my-key-1")
    assert control_plane.api_requests(CREATE)[0].headers[IDEMPOTENCY_HEADER] == "my-key-1"


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503, json={"error": "unavailable", "message": "x"}), httpx.ReadError("reset")],
    ids=["503", "reset"],
)
async def test_target_test_is_never_retried(
    make_client: ClientFactory,
    control_plane: ScriptedControlPlane,
    recording_sleep: RecordingSleep,
    failure: httpx.Response | Exception,
) -> None:
    """``POST /targets/{id}/test`` is sent once even when it fails: a retry would send a second event."""
    key = f"POST {TARGETS_PATH}/tgt_1/test"
    control_plane.script(key, failure)
    async with make_client() as client:
        with pytest.raises((InternalServerError, APIConnectionError)):
            await client.targets.test("tgt_1")
    assert len(control_plane.api_requests(key)) == 1
    assert recording_sleep.waits == []


async def test_failed_test_is_a_result_not_an_error(
    make_client: ClientFactory, control_plane: ScriptedControlPlane
) -> None:
    """A 502 with a result body is returned as a failed TargetTestResult; a bare gateway 502 is an error."""
    key = f"POST {TARGETS_PATH}/tgt_1/test"
    control_plane.script(
        key,
        httpx.Response(502, json={"result": "failed", "statusCode": 500, "latencyMs": 12.5, "error": "HTTP 500"}),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
    )
    async with make_client() as client:
        result = await client.targets.test("tgt_1")
        assert not result.passed
        assert result.status_code == 500
        with pytest.raises(InternalServerError, match="no test result"):
            await client.targets.test("tgt_1")


async def test_422_carries_field_errors(make_client: ClientFactory, control_plane: ScriptedControlPlane) -> None:
    """A 422 becomes UnprocessableEntityError listing each field by its wire path, and is not retried."""
    control_plane.script(
        CREATE,
        httpx.Response(
            422,
            json={
                "error": "validation_failed",
                "message": "the target is invalid",
                "errors": [{"field": "retryPolicy.maxRetries", "message": "must be <= 10"}],
            },
        ),
    )
    async with make_client() as client:
        with pytest.raises(UnprocessableEntityError) as caught:
            await client.targets.create(_new_target())
    assert [(e.field, e.message) for e in caught.value.errors] == [("retryPolicy.maxRetries", "must be <= 10")]
    assert "retryPolicy.maxRetries: must be <= 10" in str(caught.value)
    assert len(control_plane.api_requests(CREATE)) == 1


async def test_404_is_not_found_and_not_retried(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A 404 raises NotFoundError at once; client errors other than 408/425/429 are never retried."""
    async with make_client() as client:
        with pytest.raises(NotFoundError):
            await client.targets.get("tgt_1")
    assert recording_sleep.waits == []
    assert len(control_plane.api_requests(GET_ONE)) == 1


async def test_errors_never_carry_the_client_secret(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    """Retries and failures are logged and raised without the client secret or the bearer token."""
    caplog.set_level("DEBUG", logger="cxone_eventbridge")
    control_plane.script(GET_ONE, httpx.Response(503, json={"error": "unavailable", "message": "down"}))
    async with make_client(max_attempts=2) as client:
        with pytest.raises(InternalServerError) as caught:
            await client.targets.get("tgt_1")
    assert "retrying" in caplog.text
    for text in (caplog.text, str(caught.value), repr(caught.value), repr(client)):
        assert CLIENT_SECRET not in text
        assert "token-1" not in text


async def test_bulk_work_paces_itself(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """At 60 requests/minute the client lets a burst of 6 through, then waits 1 s more per request."""
    control_plane.script(GET_ONE, httpx.Response(200, json=target_json()))
    async with make_client(rate_limit_per_minute=60.0) as client:
        for _ in range(8):
            await client.targets.get("tgt_1")
    assert len(control_plane.api_requests(GET_ONE)) == 8
    assert [round(w) for w in recording_sleep.waits] == [1, 2]


DELETE_ONE = f"DELETE {TARGETS_PATH}/tgt_1"


async def test_delete_retried_after_a_lost_answer_succeeds(
    make_client: ClientFactory, control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep
) -> None:
    """A DELETE whose first answer was a 503 (after it had deleted) and whose retry gets 404 has succeeded."""
    control_plane.script(
        DELETE_ONE,
        httpx.Response(503, json={"error": "unavailable", "message": "try again"}),
        httpx.Response(404, json={"error": "not_found", "message": "no such target"}),
    )
    async with make_client() as client:
        await client.targets.delete("tgt_1")
    assert len(control_plane.api_requests(DELETE_ONE)) == 2


async def test_delete_of_a_missing_target_is_not_found(
    make_client: ClientFactory, control_plane: ScriptedControlPlane
) -> None:
    """A first-attempt 404 on DELETE is still NotFoundError: the id was wrong."""
    control_plane.script(DELETE_ONE, httpx.Response(404, json={"error": "not_found", "message": "no such target"}))
    async with make_client() as client:
        with pytest.raises(NotFoundError):
            await client.targets.delete("tgt_1")
