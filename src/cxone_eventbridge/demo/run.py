"""The demo, step by step: the whole product against embedded defaults, on loopback only.

``await run_demo(options, listener)`` starts the servers (``demo.services``), then:

1. applies the example targets file to the sandbox with ``iac.apply`` (and plans again: no changes);
2. tests each target through the control-plane client (the sandbox sends a real signed request);
3. loads the routing table from the sandbox's routes API into the router;
4. sends the example events to the router's HTTP ingest API, one batch per priority group, and waits
   until every queued delivery is delivered or dead-lettered;
5. reads the per-target status, lists the dead letters and replays them once;
6. exports the targets for Terraform (``terraform state list`` when a binary is given);
7. changes a target out of band through the API and runs the drift check (it finds the change);
8. verifies the audit log's hash chain.

The listener hears about each step as it ends (and about progress while routing); it is how the CLI
renders, since nothing here prints. Every server is stopped on the way out, on success, error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.demo.inputs import load_demo_targets, read_events
from cxone_eventbridge.demo.options import FLAKY_PORT, HEALTHY_PORT, TERRAFORM_DIR, DemoOptions
from cxone_eventbridge.demo.results import (
    ApplyOutcome,
    DemoResult,
    DriftOutcome,
    IngestSummary,
    Progress,
    ReplayOutcome,
    TargetDeliveries,
    TargetTest,
    TerraformOutcome,
)
from cxone_eventbridge.demo.services import DemoServices, ServiceUrls
from cxone_eventbridge.exceptions import DemoError
from cxone_eventbridge.iac.apply import apply_plan, check_secrets_available
from cxone_eventbridge.iac.drift import detect_drift
from cxone_eventbridge.iac.export import export_terraform
from cxone_eventbridge.iac.plan import compute_plan
from cxone_eventbridge.iac.remote import read_remote
from cxone_eventbridge.iac.terraform import CONFIG_FILE, STATE_FILE, parse_state
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.audit import AuditVerification, verify_audit_log
from cxone_eventbridge.router.api_client import RouterClient

PROGRESS_INTERVAL_S = 0.1
TERRAFORM_TIMEOUT_S = 60.0
DRIFT_TARGET = "Voice escalations"
DRIFT_DESCRIPTION = "Changed in the admin console, not in targets.yaml."


class DemoListener:
    """Hears each step's result as it ends; override what you render. Every method is a no-op here."""

    def started(self, urls: ServiceUrls) -> None:
        """The servers are up."""

    def applied(self, outcome: ApplyOutcome) -> None:
        """The targets file was applied."""

    def tested(self, tests: Sequence[TargetTest]) -> None:
        """Every target was tested."""

    def routing_started(self, events: int, by_priority: Mapping[int, int]) -> None:
        """Events are about to be sent to the router."""

    def progress(self, progress: Progress) -> None:
        """Called about ten times a second while routing."""

    def routed(self, ingest: IngestSummary, deliveries: Sequence[TargetDeliveries]) -> None:
        """Every delivery was delivered or dead-lettered."""

    def replayed(self, replay: ReplayOutcome) -> None:
        """The dead letters were replayed once."""

    def exported(self, terraform: TerraformOutcome) -> None:
        """The Terraform export was written."""

    def drifted(self, drift: DriftOutcome) -> None:
        """The out-of-band change was made and the drift check ran."""

    def verified(self, audit: AuditVerification) -> None:
        """The audit log was verified."""


async def run_demo(
    options: DemoOptions,
    listener: DemoListener | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> DemoResult:
    """Run every step of the demo and return what each produced; DemoError if a step fails its purpose."""
    listener = listener if listener is not None else DemoListener()
    started_at = clock()
    groups = read_events(options.events_path, limit=options.max_events)  # input errors before any server starts
    services = await DemoServices.start(options)
    try:
        return await _run_steps(options, listener, services, groups, clock=clock, started_at=started_at)
    finally:
        await services.stop()


async def _run_steps(
    options: DemoOptions,
    listener: DemoListener,
    services: DemoServices,
    groups: dict[int, list[dict[str, Any]]],
    *,
    clock: Callable[[], float],
    started_at: float,
) -> DemoResult:
    urls = services.urls
    listener.started(urls)
    assert services.healthy is not None
    assert services.flaky is not None
    assert services.router is not None
    ports = {HEALTHY_PORT: services.healthy.port, FLAKY_PORT: services.flaky.port}
    loaded = load_demo_targets(options.targets_path, secrets=options.secrets, ports=ports)
    kinds = {services.healthy.url: "healthy", services.flaky.url: "flaky"}

    # An explicit transport: the sandbox is on loopback, and a user's HTTPS_PROXY must not capture it.
    async with (
        CXoneClient.from_settings(
            services.settings(), bus=services.bus, transport=httpx.AsyncHTTPTransport()
        ) as client,
        RouterClient(urls.router) as router_api,
    ):
        apply = await _apply(client, loaded.targets, loaded.unresolved, tuple(loaded.warnings))
        listener.applied(apply)

        remote = await client.targets.list_all()
        tests = await _test_targets(client, remote)
        listener.tested(tests)

        services.router.set_targets((await client.routes()).items)

        by_priority = {priority: len(events) for priority, events in groups.items()}
        listener.routing_started(sum(by_priority.values()), by_priority)
        ingest = await _route(router_api, groups, options, listener, clock=clock)
        endpoints = {target.name: _kind(target.endpoint, kinds) for target in remote}
        status = await router_api.status()
        deliveries = tuple(
            TargetDeliveries.from_status(row, endpoints.get(row["target"], "")) for row in status["targets"]
        )
        listener.routed(ingest, deliveries)

        replay = await _replay(router_api, options, listener, clock=clock)
        listener.replayed(replay)

        terraform = await _export(remote, options)
        listener.exported(terraform)

        drift = await _drift(client, remote, terraform)
        listener.drifted(drift)

    if services.audit is not None:
        services.audit.flush()  # delivery lines wait for their batch; verify the whole log
    audit = await asyncio.to_thread(verify_audit_log, services.audit_path)
    listener.verified(audit)
    if not audit.ok:
        raise DemoError(f"the audit log does not verify: {audit.problem}")
    return DemoResult(
        urls=urls,
        apply=apply,
        tests=tests,
        ingest=ingest,
        deliveries=deliveries,
        replay=replay,
        terraform=terraform,
        drift=drift,
        audit=audit,
        elapsed_s=clock() - started_at,
    )


def _kind(endpoint: str, kinds: Mapping[str, str]) -> str:
    for base, kind in kinds.items():
        if endpoint.startswith(base + "/"):
            return kind
    return endpoint


# -- 1. apply ---------------------------------------------------------------------------------------


async def _apply(
    client: CXoneClient,
    desired: list[IntegrationTarget],
    unresolved: dict[str, list[str]],
    warnings: tuple[str, ...],
) -> ApplyOutcome:
    remote = await read_remote(client, desired)
    plan = compute_plan(
        desired, remote.targets, unresolved=unresolved, signing_fingerprints=remote.signing_fingerprints
    )
    check_secrets_available(plan, unresolved)
    report = await apply_plan(plan, client)
    if report.failed is not None:
        raise DemoError(f"applying the targets failed at {report.failed.name!r}: {report.failed.error}")
    again = await read_remote(client, desired)
    replan = compute_plan(
        desired, again.targets, unresolved=unresolved, signing_fingerprints=again.signing_fingerprints
    )
    return ApplyOutcome(plan=plan, report=report, replan_has_changes=replan.has_changes, warnings=warnings)


# -- 2. test ----------------------------------------------------------------------------------------


async def _test_targets(client: CXoneClient, targets: Sequence[IntegrationTarget]) -> tuple[TargetTest, ...]:
    results: list[TargetTest] = []
    for target in sorted(targets, key=lambda t: t.name):
        assert target.id is not None
        result = await client.targets.test(target.id, name=target.name)
        results.append(
            TargetTest(
                name=target.name,
                endpoint=target.endpoint,
                passed=result.passed,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=result.error,
            )
        )
    return tuple(results)


# -- 4. route ---------------------------------------------------------------------------------------


def _progress(status: Mapping[str, Any], accepted: int, total: int) -> Progress:
    queue = status["queue"]
    settled = int(queue["delivered"]) + int(queue["dead"])
    return Progress(
        events_accepted=accepted,
        events_total=total,
        deliveries_settled=settled,
        deliveries_queued=settled + int(queue["pending"]) + int(queue["leased"]),
    )


async def _wait_settled(
    api: RouterClient,
    listener: DemoListener,
    *,
    accepted: Callable[[], int],
    total: int,
    done_sending: asyncio.Event,
    timeout_s: float,
) -> Progress:
    """Report progress until sending is done and nothing is pending or leased any more."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                progress = _progress(await api.status(), accepted(), total)
                listener.progress(progress)
                if done_sending.is_set() and progress.deliveries_settled == progress.deliveries_queued:
                    return progress
                await asyncio.sleep(PROGRESS_INTERVAL_S)
    except TimeoutError:
        raise DemoError(
            f"deliveries did not settle within {timeout_s:.0f} s; the queue and receivers' records are in the "
            "output directory"
        ) from None


async def _route(
    api: RouterClient,
    groups: Mapping[int, list[dict[str, Any]]],
    options: DemoOptions,
    listener: DemoListener,
    *,
    clock: Callable[[], float],
) -> IngestSummary:
    total = sum(len(events) for events in groups.values())
    sent = 0
    requests = 0
    done_sending = asyncio.Event()
    began = clock()
    monitor = asyncio.create_task(
        _wait_settled(
            api,
            listener,
            accepted=lambda: sent,
            total=total,
            done_sending=done_sending,
            timeout_s=options.settle_timeout_s,
        )
    )
    try:
        for priority, events in groups.items():  # lowest number (most urgent) first
            for start in range(0, len(events), options.batch_size):
                batch = events[start : start + options.batch_size]
                ids = await api.ingest(batch, priority=priority)
                sent += len(ids)
                requests += 1
        ingest_s = clock() - began
        done_sending.set()
        final = await monitor
    finally:
        # On an ingest error or Ctrl-C: stop reporting, and collect the task so no exception goes unretrieved.
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
    return IngestSummary(
        events=sent,
        deliveries=final.deliveries_queued,
        by_priority={priority: len(events) for priority, events in groups.items()},
        requests=requests,
        ingest_s=ingest_s,
        settle_s=clock() - began,
    )


# -- 5. dead letters and replay ---------------------------------------------------------------------


async def _replay(
    api: RouterClient, options: DemoOptions, listener: DemoListener, *, clock: Callable[[], float]
) -> ReplayOutcome:
    letters = (await api.dead_letters(limit=10_000))["items"]
    replayed = await api.replay()
    done = asyncio.Event()
    done.set()
    await _wait_settled(
        api, _Quiet(), accepted=lambda: 0, total=0, done_sending=done, timeout_s=options.settle_timeout_s
    )
    dead_again = len((await api.dead_letters(limit=10_000))["items"])
    return ReplayOutcome(
        dead_letters=tuple(letters), replayed=replayed, delivered=replayed - dead_again, dead_again=dead_again
    )


class _Quiet(DemoListener):
    """No progress reports while the replay settles (the step's result says what happened)."""


# -- 6. terraform -----------------------------------------------------------------------------------


async def _export(targets: Sequence[IntegrationTarget], options: DemoOptions) -> TerraformOutcome:
    out = options.output_dir / TERRAFORM_DIR
    for stale in (out / STATE_FILE, out / CONFIG_FILE):
        stale.unlink(missing_ok=True)  # a fresh lineage each run: the sandbox starts empty each run
    export = await asyncio.to_thread(export_terraform, out, targets)
    if options.terraform_binary is None:
        return TerraformOutcome(export=export, state_list=None)
    addresses, error = await terraform_state_list(options.terraform_binary, export.state_path, home=options.output_dir)
    return TerraformOutcome(export=export, state_list=addresses, state_list_error=error)


def _terraform_invocation(binary: str, state: Path, home: Path) -> tuple[list[str], dict[str, str], str]:
    args = [binary, "state", "list", f"-state={state.resolve()}"]
    env = {
        "PATH": os.defpath,
        "HOME": str(home.resolve()),
        "CHECKPOINT_DISABLE": "1",  # no update check over the network
        "TF_IN_AUTOMATION": "1",
    }
    # A directory without configuration: only the state is read.
    return args, env, str(state.parent.parent.resolve())


async def terraform_state_list(binary: str, state: Path, *, home: Path) -> tuple[tuple[str, ...] | None, str | None]:
    """``terraform state list -state=FILE``: the addresses, or None and terraform's error text."""
    args, env, cwd = _terraform_invocation(binary, state, home)
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TERRAFORM_TIMEOUT_S):
            stdout, stderr = await process.communicate()
    except BaseException:
        # Timeout, Ctrl-C or cancellation: the child must not outlive the demo.
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        return None, stderr.decode(errors="replace").strip() or f"terraform exited {process.returncode}"
    return tuple(stdout.decode().split()), None


# -- 7. drift ---------------------------------------------------------------------------------------


async def _drift(
    client: CXoneClient, targets: Sequence[IntegrationTarget], terraform: TerraformOutcome
) -> DriftOutcome:
    victim = next((t for t in targets if t.name == DRIFT_TARGET), None) or min(targets, key=lambda t: t.name)
    assert victim.id is not None
    await client.targets.patch(victim.id, {"description": DRIFT_DESCRIPTION})
    state_path = terraform.export.state_path
    text = await asyncio.to_thread(state_path.read_text, encoding="utf-8")
    parsed = parse_state(text, source=str(state_path))
    report = detect_drift(parsed, await client.targets.list_all(), source=str(state_path))
    if not report.has_drift:
        raise DemoError("the drift check did not find the out-of-band change")
    return DriftOutcome(target=victim.name, changed_field="description", state_path=state_path, report=report)
