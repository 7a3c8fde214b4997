"""Steering one target: ``POST /v1/targets/{target}/enable|pause|resume|probe`` (``{target}``: name or id).

- ``enable``: deliver again to a target that a 410 answer disabled (or that was paused).
- ``pause``: hold the target's deliveries in the queue, for every router sharing it, spending no attempt,
  until ``resume``; ingest still accepts its events. Pausing a paused target changes nothing
  (``changed: false``); a target disabled by a 410 is not paused over (409: enable it first).
- ``resume``: release a paused target's deliveries; resuming one that is not paused changes nothing, and a
  target disabled by a 410 answers 409 (``enable`` is what releases it).
- ``probe`` (``?wait=`` seconds, 0-120, default 30): an open circuit goes half-open now, here and for every
  router sharing the queue, so its next pending delivery is sent as the probe; the answer is that
  attempt (``attempt``: status, latency, error) and the circuit after it (closed on success, open again
  for twice as long on failure). With nothing pending the circuit stays half-open, the next delivery is
  the probe, and ``attempt`` is null with a ``message`` saying so; likewise when no attempt is seen here
  within the wait (another router may have sent it). A closed circuit answers 409 ``circuit_closed``
  (nothing to probe), a paused or 410-disabled target 409 ``target_disabled``.

Each change is published as a ``TargetChanged`` record (audit log, operations log) by the router.
"""

from __future__ import annotations

from aiohttp import web

from cxone_eventbridge.exceptions import IngestError
from cxone_eventbridge.router.http_routes import context
from cxone_eventbridge.router.live import attempt_to_wire
from cxone_eventbridge.router.queue.records import TargetHold

routes = web.RouteTableDef()


def _gone_conflict(name: str, action: str) -> IngestError:
    return IngestError(
        409,
        "target_disabled",
        f"target {name} is disabled after its endpoint answered 410 Gone; nothing to {action}: "
        f"`cxeb router enable {name}` delivers to it again",
    )


@routes.post("/v1/targets/{target}/enable")
async def enable(request: web.Request) -> web.Response:
    name = context.resolve_target(request, request.match_info["target"])
    if not await context.of(request).router.enable_target(name):
        raise IngestError(404, "not_found", f"no target named {name!r}")
    return web.json_response({"target": name, "enabled": True})


@routes.post("/v1/targets/{target}/pause")
async def pause(request: web.Request) -> web.Response:
    api = context.of(request)
    name = context.resolve_target(request, request.match_info["target"])
    hold = (await api.router.target_holds()).get(name)
    if hold == TargetHold.PAUSED:
        return web.json_response({"target": name, "paused": True, "changed": False})
    if hold is not None:
        raise _gone_conflict(name, "pause")
    await api.router.pause_target(name)
    return web.json_response({"target": name, "paused": True, "changed": True})


@routes.post("/v1/targets/{target}/resume")
async def resume(request: web.Request) -> web.Response:
    api = context.of(request)
    name = context.resolve_target(request, request.match_info["target"])
    hold = (await api.router.target_holds()).get(name)
    if hold is not None and hold != TargetHold.PAUSED:
        raise _gone_conflict(name, "resume")
    changed = await api.router.resume_target(name)
    return web.json_response({"target": name, "paused": False, "changed": changed})


MAX_PROBE_WAIT_S = 120.0


def _wait_s(value: str | None) -> float:
    try:
        wait_s = float(value) if value is not None else 30.0
    except ValueError:
        wait_s = -1.0
    if not 0 <= wait_s <= MAX_PROBE_WAIT_S:
        raise IngestError(
            400,
            "invalid_wait",
            f"wait must be a number of seconds from 0 to {MAX_PROBE_WAIT_S:g}",
            [("wait", str(value))],
        )
    return wait_s


@routes.post("/v1/targets/{target}/probe")
async def probe(request: web.Request) -> web.Response:
    api = context.of(request)
    name = context.resolve_target(request, request.match_info["target"])
    wait_s = _wait_s(request.query.get("wait"))
    hold = (await api.router.target_holds()).get(name)
    if hold == TargetHold.PAUSED:
        raise IngestError(
            409, "target_disabled", f"target {name} is paused: nothing is sent to it until `cxeb router resume {name}`"
        )
    if hold is not None:
        raise _gone_conflict(name, "probe")
    outcome = await api.router.probe_target(name, wait_s=wait_s)
    if not outcome.probed:
        raise IngestError(
            409, "circuit_closed", f"the circuit of {name} is closed: its deliveries flow, there is nothing to probe"
        )
    row = api.status.target(name).to_wire()
    body = {
        "target": name,
        "pending": outcome.pending,
        "attempt": attempt_to_wire(outcome.attempt) if outcome.attempt is not None else None,
        "circuit": row["circuit"],
        "circuitUntil": row["circuitUntil"],
        "circuitReason": row["circuitReason"],
    }
    if outcome.attempt is None:
        body["message"] = (
            f"no pending delivery of {name} to probe with: its circuit is half-open, so its next delivery is the probe"
            if outcome.pending == 0
            else f"no probe attempt seen by this router within {wait_s:g} s: another router sharing the queue may "
            "have sent it (`cxeb router status` shows the circuit)"
        )
    return web.json_response(body)
