"""What each demo step produced: frozen records the CLI renders and tests assert on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxone_eventbridge.demo.services import ServiceUrls
from cxone_eventbridge.iac.apply import ApplyReport
from cxone_eventbridge.iac.drift import DriftReport
from cxone_eventbridge.iac.export import ExportResult
from cxone_eventbridge.iac.plan import Plan
from cxone_eventbridge.observe.audit import AuditVerification


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """``examples/targets.yaml`` applied to the sandbox, and the plan run again right after."""

    plan: Plan
    report: ApplyReport
    replan_has_changes: bool  # False: the second plan found nothing to do (apply converged)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetTest:
    """One ``POST /targets/{id}/test`` result."""

    name: str
    endpoint: str
    passed: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    """Where routing stands: events accepted by the router, deliveries settled (delivered or dead-lettered)."""

    events_accepted: int
    events_total: int
    deliveries_settled: int
    deliveries_queued: int


@dataclass(frozen=True, slots=True)
class IngestSummary:
    """The events sent to the router's ingest API, grouped by priority."""

    events: int
    deliveries: int  # (event, target) pairs the router queued
    by_priority: dict[int, int]
    requests: int
    ingest_s: float
    settle_s: float  # from the first ingest until every delivery was delivered or dead-lettered


@dataclass(frozen=True, slots=True)
class TargetDeliveries:
    """One row of the per-target table (the router's ``GET /v1/status``)."""

    target: str
    endpoint: str
    queued: int
    delivered: int
    retried: int
    dead_lettered: int
    p50_ms: float | None
    p99_ms: float | None

    @classmethod
    def from_status(cls, row: dict[str, Any], endpoint: str) -> TargetDeliveries:
        return cls(
            target=str(row["target"]),
            endpoint=endpoint,
            queued=int(row["queued"]),
            delivered=int(row["delivered"]),
            retried=int(row["retries"]),
            dead_lettered=int(row["failed"]),
            p50_ms=row.get("p50Ms"),
            p99_ms=row.get("p99Ms"),
        )


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """The dead letters, replayed once: how many came through this time."""

    dead_letters: tuple[dict[str, Any], ...]  # the router's ``GET /v1/dead-letters`` items, before the replay
    replayed: int
    delivered: int
    dead_again: int


@dataclass(frozen=True, slots=True)
class TerraformOutcome:
    """The Terraform export of the sandbox's targets, and what ``terraform state list`` said about it."""

    export: ExportResult
    state_list: tuple[str, ...] | None  # None when terraform is not installed
    state_list_error: str | None = None


@dataclass(frozen=True, slots=True)
class DriftOutcome:
    """An out-of-band change made through the API, and the drift check that found it."""

    target: str
    changed_field: str
    state_path: Path
    report: DriftReport

    @property
    def exit_code(self) -> int:
        """What ``cxeb drift`` would exit with (Terraform's -detailed-exitcode): 2 when drift is found."""
        return 2 if self.report.has_drift else 0


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Everything one run did."""

    urls: ServiceUrls
    apply: ApplyOutcome
    tests: tuple[TargetTest, ...]
    ingest: IngestSummary
    deliveries: tuple[TargetDeliveries, ...]
    replay: ReplayOutcome
    terraform: TerraformOutcome
    drift: DriftOutcome
    audit: AuditVerification
    elapsed_s: float
