"""The control-plane API's other bodies: a page of targets, a test call's result, the routes table, errors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from cxone_eventbridge.models.base import WireModel
from cxone_eventbridge.models.target import IntegrationTarget


class TargetPage(WireModel):
    """One page of ``GET /targets``."""

    items: list[IntegrationTarget]
    next_cursor: str | None = None


class TestOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class TargetTestResult(WireModel):
    """What ``POST /targets/{id}/test`` found: 200 when passed, 502/504 when failed."""

    __test__ = False  # not a pytest test class, despite the name

    result: TestOutcome
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    test_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.result == TestOutcome.PASSED


class RoutesTable(WireModel):
    """``GET /api/v2/events/routes``: every target with its secrets, for routers only."""

    items: list[IntegrationTarget]
    generated_at: datetime | None = None


class ErrorBody(WireModel):
    """The error body every API error carries."""

    error: str
    message: str
    errors: list[dict[str, str]] = Field(default_factory=list)
