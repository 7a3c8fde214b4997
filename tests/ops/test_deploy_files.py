"""deploy/: the alert rules pass promtool, and every metric the dashboard and alerts query is one a router exports."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cxone_eventbridge.sandbox.receiver import RunningReceiver

from .conftest import DEPLOY, RouterFactory

SELECTOR = re.compile(r"\b(cxeb_\w+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Labels Prometheus adds to every scraped series, and the one metric it makes itself.
TARGET_LABELS = {"instance", "job"}
SYNTHETIC = {"up"}


def dashboard_queries() -> Iterator[str]:
    """Every PromQL expression of the Grafana dashboard (panels and template variables)."""
    dashboard = json.loads((DEPLOY / "grafana" / "cxeb-router.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["definition"]
            yield re.sub(r"^label_values\((.*), *\w+\)$", r"\1", query)


def alert_queries() -> Iterator[str]:
    """Every expression of the alert rules."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["expr"]


def test_alert_rules_pass_promtool_check_and_their_unit_tests(promtool: str) -> None:
    """`promtool check rules` accepts alerts.yaml and `promtool test rules` sees each alert fire when it should."""
    checked = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"],
        check=False,
        capture_output=True,
        text=True,
        cwd=DEPLOY / "prometheus",
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_dashboard_is_importable_grafana_json() -> None:
    """The dashboard has a uid, a datasource variable, and every panel but rows queries something."""
    dashboard = json.loads((DEPLOY / "grafana" / "cxeb-router.json").read_text())
    assert dashboard["uid"] == "cxeb-router"
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "instance", "target"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["type"] == "row" or panel["targets"], panel["title"]


def exported_series(exposition: str) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets of its samples."""
    series: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            series.setdefault(sample.name, []).append(dict(sample.labels))
    return series


def problems_of(expr: str, series: dict[str, list[dict[str, str]]]) -> list[str]:
    """What in one expression names a metric, label or label value that the router does not export."""
    problems: list[str] = []
    used: set[str] = set()
    for name, matchers in SELECTOR.findall(expr):
        used.add(name)
        if name not in series:
            problems.append(f"{name} is not exported")
            continue
        for label, op, value in MATCHER.findall(matchers):
            if label in TARGET_LABELS:
                continue
            values = {labels.get(label) for labels in series[name]}
            if values == {None}:
                problems.append(f"{name} has no label {label}")
            elif op in ("=", "=~") and "$" not in value:
                for alternative in value.split("|") if op == "=~" else [value]:
                    if alternative not in values:
                        problems.append(f'{name}{{{label}="{alternative}"}} is not exported')
    bare = set(re.findall(r"\b(cxeb_\w+)\b(?!\s*\{)", SELECTOR.sub("", expr)))
    for name in bare - used:
        if name not in series:
            problems.append(f"{name} is not exported")
    used |= bare
    for grouping in GROUPING.findall(expr):
        for label in (part.strip() for part in grouping.split(",")):
            metric_labels = {key for name in used if name in series for labels in series[name] for key in labels}
            if label and label not in TARGET_LABELS | metric_labels:
                problems.append(f"grouping by {label}, which none of {sorted(used)} has")
    if not used and not set(re.findall(r"\b\w+\b", expr)) & SYNTHETIC:
        problems.append("queries no metric")
    return problems


def test_problems_of_finds_unknown_metrics_labels_and_values() -> None:
    """The checker itself: an unknown metric, label, value or grouping label is reported."""
    series = {"cxeb_x_total": [{"target": "crm", "outcome": "success"}]}
    assert problems_of('sum by (target) (rate(cxeb_x_total{outcome="success"}[5m]))', series) == []
    assert problems_of("rate(cxeb_y_total[5m])", series) == ["cxeb_y_total is not exported"]
    assert problems_of('cxeb_x_total{outcome="gone"}', series) == ['cxeb_x_total{outcome="gone"} is not exported']
    assert problems_of('cxeb_x_total{reason="x"}', series) == ["cxeb_x_total has no label reason"]
    assert problems_of("sum by (reason) (cxeb_x_total{})", series) == [
        "grouping by reason, which none of ['cxeb_x_total'] has"
    ]
    assert problems_of("vector(1)", series) == ["queries no metric"]


@pytest.mark.e2e
async def test_every_metric_the_dashboard_and_alerts_query_is_exported_by_a_running_router(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """Scrape a real `cxeb router serve` with traffic: each metric, label and value queried exists."""
    receiver = await https_receiver()
    targets: list[dict[str, Any]] = [{"name": "crm", "endpoint": f"{receiver.url}/hooks/crm"}]
    router = await router_process(targets, receiver=receiver)
    await router.send([{"id": f"e{n}", "eventType": "call.ended"} for n in range(5)])
    async with router.client() as client:
        refused = await client.post("/v1/events", content=b"{oops")  # ingest refusals are labelled by error code
        assert refused.status_code == 400
        exposition = (await client.get("/metrics")).text
    series = exported_series(exposition)
    queries = [*dashboard_queries(), *alert_queries()]
    assert len(queries) > 20
    problems = {expr: found for expr in queries if (found := problems_of(expr, series))}
    assert problems == {}
