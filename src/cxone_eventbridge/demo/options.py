"""What a demo run uses: the example files, where artifacts go, and the knobs that keep it short.

The example targets file names the default receiver ports (8743 healthy, 8744 flaky) and reads its secrets
from ``${env:DEMO_*}`` variables; the demo points those ports at the receivers it starts and supplies the
variables itself, without touching the process environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxone_eventbridge.observe.events import Observer

HEALTHY_PORT = 8743
FLAKY_PORT = 8744

# The secrets the example targets reference. They guard only the demo's own loopback receivers.
DEMO_SECRETS: Mapping[str, str] = {
    "DEMO_WALLBOARD_TOKEN": "demo-wallboard-token",
    "DEMO_CRM_KEY": "demo-crm-key",
    "DEMO_WFM_BASIC": "wfm:demo-password",
}

# Artifacts inside the output directory.
QUEUE_DB = "router-queue.db"
AUDIT_LOG = "target_audit.log"
HEALTHY_RECORD = "receiver-healthy.jsonl"
FLAKY_RECORD = "receiver-flaky.jsonl"
CERTS_DIR = "certs"
TERRAFORM_DIR = "terraform"


def default_examples_dir() -> Path:
    """``examples/`` of a source checkout (where ``make demo`` runs), else the current directory's."""
    checkout = Path(__file__).resolve().parents[3] / "examples"
    return checkout if checkout.is_dir() else Path("examples")


@dataclass(frozen=True)
class DemoOptions:
    """One demo run. Defaults are the full demo: every event of ``events_path``."""

    output_dir: Path = Path("demo-output")
    targets_path: Path = field(default_factory=lambda: default_examples_dir() / "targets.yaml")
    events_path: Path = field(default_factory=lambda: default_examples_dir() / "events.jsonl")
    max_events: int | None = None  # None: all of them
    batch_size: int = 1000  # events per ingest request (one progress step)
    flaky_fail_rate: float = 0.2  # the flaky receiver answers this fraction of requests 503...
    flaky_retry_after_s: float = 1.0  # ...with this Retry-After
    retry_base_s: float = 0.05  # the dispatcher's backoff base when no Retry-After is given
    retry_cap_s: float = 1.0
    settle_timeout_s: float = 120.0  # give up waiting for deliveries after this long
    seed: int | None = 7  # the flaky receiver's failures, reproducible for a given order of requests
    terraform_binary: str | None = None  # run ``terraform state list`` on the export when given
    secrets: Mapping[str, str] = field(default_factory=lambda: dict(DEMO_SECRETS))
    observers: Sequence[Observer] = ()  # more observers on the router's and the client's bus (e.g. logging)

    def __post_init__(self) -> None:
        if self.max_events is not None and self.max_events < 1:
            raise ValueError(f"events: {self.max_events} must be at least 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: {self.batch_size} must be at least 1")
        if not 0.0 <= self.flaky_fail_rate <= 1.0:
            raise ValueError(f"flaky_fail_rate: {self.flaky_fail_rate} must be between 0 and 1")
        if self.settle_timeout_s <= 0:
            raise ValueError(f"settle_timeout_s: {self.settle_timeout_s} must be positive")
