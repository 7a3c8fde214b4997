"""The event catalogue: the demo's events.jsonl is drawn from it, and `cxeb trigger` sends from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.demo.catalogue import BY_NAME, EVENT_TYPES, demo_stream

EXAMPLES = Path(__file__).parents[2] / "examples"
runner = CliRunner()


def test_the_demo_stream_is_the_catalogues() -> None:
    """examples/events.jsonl starts with exactly what the catalogue draws with the demo's seed."""
    with (EXAMPLES / "events.jsonl").open(encoding="utf-8") as handle:
        head = [json.loads(next(handle)) for _ in range(200)]
    assert demo_stream(200, seed=20261129, start=datetime(2026, 11, 29, 9, 0, tzinfo=UTC)) == head


def test_every_type_has_a_priority_and_a_description() -> None:
    """The --list table has something to say about each type."""
    assert len(BY_NAME) == len(EVENT_TYPES)
    assert all(0 <= t.priority <= 9 and t.description for t in EVENT_TYPES)


def test_trigger_dry_run_is_reproducible_with_a_seed() -> None:
    """--dry-run prints the event; the same --seed gives the same contact and agent."""
    first = runner.invoke(app, ["trigger", "email.received", "--dry-run", "--seed", "3", "--tenant", "t-9"])
    second = runner.invoke(app, ["trigger", "email.received", "--dry-run", "--seed", "3"])
    assert first.exit_code == second.exit_code == 0
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["id"] == two["id"]
    assert one["contact"] == two["contact"]
    assert (one["eventType"], one["tenantId"], one["contact"]["channel"]) == ("email.received", "t-9", "email")
    assert runner.invoke(app, ["trigger"]).exit_code == 2


def test_trigger_list_as_a_table() -> None:
    """--list prints every type with its priority and meaning."""
    result = runner.invoke(app, ["trigger", "--list"])
    assert result.exit_code == 0
    assert all(t.name in result.stdout for t in EVENT_TYPES)
