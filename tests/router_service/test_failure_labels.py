"""A whole router on loopback labels retries and dead letters with reasons from the fixed set."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import StackFactory

pytestmark = pytest.mark.e2e


async def test_a_failing_target_is_labelled_status_5xx_and_other_reasons_read_zero(router_stack: StackFactory) -> None:
    """503 twice (one retry) then dead-lettered: both counted under status_5xx; the other reasons read 0."""
    stack = await router_stack(receiver_status=503, targets=["crm"])
    status, body, _ = await stack.call("POST", "/v1/events", json={"id": "e1"})
    assert status == 202, body
    await stack.outcomes.wait(dead=1)
    status, text, _ = await stack.call("GET", "/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples["cxeb_delivery_retries_total", (("reason", "status_5xx"), ("target", "crm"))] == 1
    assert samples["cxeb_dead_letters_total", (("reason", "status_5xx"), ("target", "crm"))] == 1
    assert samples["cxeb_dead_letters_total", (("reason", "timeout"), ("target", "crm"))] == 0
    reasons = {dict(labels).get("reason") for name, labels in samples if name == "cxeb_dead_letters_total"}
    assert "status 503" not in reasons
