"""``cxeb router events show`` and ``cxeb router replay`` / ``replays``: an event's history, and replays.

``events show ID`` prints the event, each delivery (target, state, delivery id, replay mark) and every
recorded attempt (time, status, latency, error category) from ``GET /v1/events/{id}``.

``replay --since T [--until T] [--target NAME] [--pattern P] [--rate N]`` starts a replay job on the
router (``POST /v1/replays``) and follows it: a progress bar on stderr while the router re-sends, then a
summary. Ctrl-C stops following, not the replay (``replays ID`` shows it later, ``replays ID --cancel``
stops it). Times are ISO-8601 or relative to now (``-2h``); bad input names its flag and exits 2 before
anything is sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.router_connection import CA_BUNDLE, INGEST_KEY, OUTPUT, URL, Connection, call_router

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RouterClient

events_commands = typer.Typer(help="An event's deliveries and every attempt.", no_args_is_help=True)
_POLL_S: Final = 0.5


async def _call(client: RouterClient, method: str, path: str, body: Any = None) -> dict[str, Any]:
    # The router client's one retried call; these routes are this module's own.
    return await client._call(method, path, json_body=body)


@events_commands.command("show")
def show(
    event_id: str = typer.Argument(..., metavar="EVENT_ID", help="The event's id (as ingest returned it)."),
    output: render.OutputFormat = OUTPUT,
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
) -> None:
    """Show an event, each of its deliveries (and its replays') and every attempt: time, status, latency, error."""
    from urllib.parse import quote

    async def operation(client: RouterClient) -> dict[str, Any]:
        return await _call(client, "GET", f"/v1/events/{quote(event_id, safe='')}")

    history = call_router(Connection(url, ingest_key, ca_bundle), operation)
    if output is render.OutputFormat.JSON:
        render.print_json(history)
        return
    render.print_lines(describe_history(history))


def describe_history(history: dict[str, Any]) -> list[str]:
    """An event's history as lines for people."""
    lines = [f"event {history['eventId']}  accepted {history.get('acceptedAt') or '(pruned)'}"]
    if history.get("replayOf"):
        lines.append(f"  a replay of {history['replayOf']}")
    deliveries = history.get("deliveries") or []
    if not deliveries:
        lines.append("  no deliveries (the event matched no target, or they were pruned)")
    for delivery in deliveries:
        mark = f"  replay {delivery['replayId']}" if delivery.get("replayId") else ""
        why = f" ({delivery['reason']})" if delivery.get("reason") else ""
        lines.append(
            f"  {delivery['target']}: {delivery['state']}{why}, {delivery['attempts']} attempt(s)"
            f"  {delivery['deliveryId']}{mark}"
        )
        for attempt in delivery.get("history") or []:
            answer = str(attempt["status"]) if attempt.get("status") is not None else "no answer"
            category = f"  {attempt['category']}" if attempt.get("category") else ""
            error = f"  {attempt['error']}" if attempt.get("error") else ""
            lines.append(
                f"    #{attempt['attempt']}  {attempt['at']}  {attempt['outcome']}  {answer}"
                f"  {float(attempt['latencyMs']):.1f} ms{category}{error}"
            )
        if not delivery.get("history") and not history.get("attemptsRecorded"):
            lines.append("    (attempts are recorded when the router runs with --archive-days)")
    return lines


def _moment(flag: str, value: str, now: float) -> str:
    from cxone_eventbridge.moments import iso, parse_moment

    try:
        return iso(parse_moment(value, now=now))
    except ValueError as exc:
        render.fail(f"{flag}: {exc}", render.EXIT_INVALID_INPUT)


def _pattern(value: str) -> Any:
    """``--pattern`` as an object: inline JSON when it starts with ``{``, else a file of JSON; checked here."""
    from cxone_eventbridge.exceptions import InvalidPatternError
    from cxone_eventbridge.matching import compile_pattern

    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            render.fail(
                f"--pattern: cannot read {value}: {getattr(exc, 'strerror', None) or exc}", render.EXIT_INVALID_INPUT
            )
    try:
        compile_pattern(text)
        return json.loads(text)
    except (InvalidPatternError, ValueError) as exc:
        render.fail(f"--pattern: {exc}", render.EXIT_INVALID_INPUT)


def replay(  # noqa: PLR0917 -- typer maps each option to a parameter
    since: str = typer.Option(..., "--since", metavar="TIME", help="Replay events accepted from: ISO-8601 or -2h."),
    until: str = typer.Option("now", "--until", metavar="TIME", help="... until (not included): ISO-8601 or -1h."),
    target: str | None = typer.Option(
        None, "--target", metavar="TARGET", help="Only to this target, by name or id (if it matches)."
    ),
    pattern: str | None = typer.Option(
        None, "--pattern", metavar="P.json|JSON", help="Only events matching this event pattern too."
    ),
    rate: float = typer.Option(100.0, "--rate", min=0.001, max=10_000, help="At most this many events per second."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the replay until it ends (progress, summary)."),
    output: render.OutputFormat = OUTPUT,
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
) -> None:
    """Re-send archived events of a time window to the targets that match them now (router --archive-days).

    Each re-sent event is a new delivery with its own id and a cxeb-replay-id header. The replay runs on
    the router and survives a restart; Ctrl-C stops following it, not the replay.
    """
    now = time.time()
    body: dict[str, Any] = {"since": _moment("--since", since, now), "until": _moment("--until", until, now)}
    if body["until"] <= body["since"]:
        render.fail("--until: must be later than --since", render.EXIT_INVALID_INPUT)
    body["rate"] = rate
    if target is not None:
        body["target"] = target
    if pattern is not None:
        body["pattern"] = _pattern(pattern)

    async def operation(client: RouterClient) -> dict[str, Any]:
        job = await _start(client, body)
        render.info(f"replay {job['replayId']} started: {job['total']} archived event(s) in the window")
        return await _follow(client, job) if wait else job

    job = call_router(Connection(url, ingest_key, ca_bundle), operation)
    _summarize(job, output)


async def _start(client: RouterClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST the replay; the router's field errors come back as InputError naming this command's flags."""
    from cxone_eventbridge.exceptions import FieldError, InputError, RouterRefusedError

    try:
        return await _call(client, "POST", "/v1/replays", body)
    except RouterRefusedError as exc:
        if exc.status != 400 or not exc.errors:
            raise
        raise InputError(
            "the router refused the replay", [FieldError(f"--{e.field}", e.message) for e in exc.errors]
        ) from None


async def _follow(client: RouterClient, job: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    path = f"/v1/replays/{job['replayId']}"
    try:
        with Progress(*columns, console=render.stderr, transient=True) as bar:
            task = bar.add_task("replay", total=job.get("total"))
            while job["state"] == "running":
                await asyncio.sleep(_POLL_S)
                job = await _call(client, "GET", path)
                bar.update(task, completed=job["scanned"])
    except (KeyboardInterrupt, asyncio.CancelledError):
        render.warn(f"stopped following; replay {job['replayId']} goes on (`cxeb router replays {job['replayId']}`)")
        raise
    return job


def _summarize(job: dict[str, Any], output: render.OutputFormat) -> None:
    if output is render.OutputFormat.JSON:
        render.print_json(job)
    summary = (
        f"replay {job['replayId']} {job['state']}: {job['replayed']} of {job['scanned']} archived event(s) re-sent"
        f" ({job['scanned'] - job['replayed']} matched no target now), {job['deliveries']} deliveries"
    )
    if job["state"] == "failed":
        render.fail(f"{summary}; {job.get('error')}")
    if job["state"] == "running":
        render.info(f"replay {job['replayId']} running: `cxeb router replays {job['replayId']}` shows its progress")
    else:
        render.success(summary)


def replays(  # noqa: PLR0917 -- typer maps each option to a parameter
    replay_id: str | None = typer.Argument(None, metavar="[REPLAY_ID]", help="One replay (else the newest)."),
    cancel: bool = typer.Option(False, "--cancel", help="Stop this running replay."),
    output: render.OutputFormat = OUTPUT,
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
) -> None:
    """List the router's replays, show one, or stop one (--cancel)."""
    if cancel and replay_id is None:
        render.fail("--cancel: name the replay to stop (REPLAY_ID)", render.EXIT_INVALID_INPUT)

    async def operation(client: RouterClient) -> dict[str, Any]:
        if replay_id is None:
            return await _call(client, "GET", "/v1/replays")
        path = f"/v1/replays/{replay_id}"
        return await _call(client, "POST", f"{path}/cancel", {}) if cancel else await _call(client, "GET", path)

    answer = call_router(Connection(url, ingest_key, ca_bundle), operation)
    if output is render.OutputFormat.JSON:
        render.print_json(answer)
        return
    jobs = answer["items"] if replay_id is None else [answer]
    render.print_table(
        None,
        ["replay", "state", "since", "until", "target", "scanned", "re-sent", "deliveries"],
        [
            [
                j["replayId"],
                j["state"],
                j["since"],
                j["until"],
                j["target"] or "(all)",
                _of(j),
                j["replayed"],
                j["deliveries"],
            ]
            for j in jobs
        ],
    )


def _of(job: dict[str, Any]) -> str:
    return f"{job['scanned']}/{job['total']}" if job.get("total") is not None else str(job["scanned"])


def register(router_app: typer.Typer) -> None:
    """Add ``events``, ``replay`` and ``replays`` to the ``router`` group."""
    router_app.add_typer(events_commands, name="events")
    router_app.command("replay")(replay)
    router_app.command("replays")(replays)
