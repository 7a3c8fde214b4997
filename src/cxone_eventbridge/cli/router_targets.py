"""``cxeb router enable|pause|resume|probe TARGET``: steer one target of a running router (by name or id)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.router_connection import CA_BUNDLE, INGEST_KEY, OUTPUT, URL, Connection, call_router, show

if TYPE_CHECKING:
    from cxone_eventbridge.router.api_client import RouterClient

TARGET = typer.Argument(..., metavar="TARGET", help="The target's name or control-plane id.")


def _steering_command(
    action: Callable[[RouterClient, str], Awaitable[dict[str, Any]]],
    describe: Callable[[dict[str, Any]], str],
    doc: str,
) -> Callable[..., None]:
    """A command that applies ``action`` to one target and says what it did (the three alike: enable,
    pause, resume)."""

    def command(
        target: str = TARGET,
        url: str | None = URL,
        ingest_key: str | None = INGEST_KEY,
        ca_bundle: Path | None = CA_BUNDLE,
        output: render.OutputFormat = OUTPUT,
    ) -> None:
        answer = call_router(Connection(url, ingest_key, ca_bundle), lambda client: action(client, target))
        show(answer, output, lambda data: render.success(describe(data)))

    command.__doc__ = doc
    return command


enable = _steering_command(
    lambda client, target: client.enable(target),
    lambda answer: f"target {answer['target']} enabled",
    "Re-enable a target that the router disabled after its endpoint answered 410 Gone (or that was paused).",
)
pause = _steering_command(
    lambda client, target: client.pause(target),
    lambda answer: f"target {answer['target']} " + ("paused" if answer["changed"] else "was already paused"),
    """Hold a target's deliveries until `resume`: no attempt is spent and they do not expire meanwhile.

    Events for it are still accepted. The pause is kept in the queue: it holds across restarts and for
    every router sharing the queue. Time spent paused does not count toward the maximum event age (24 h):
    after a week's pause, a delivery accepted an hour before it is an hour old.
    """,
)
resume = _steering_command(
    lambda client, target: client.resume(target),
    lambda answer: f"target {answer['target']} " + ("resumed" if answer["changed"] else "was not paused"),
    "Release a paused target's deliveries.",
)


def describe_probe(answer: dict[str, Any]) -> str:
    """The probe's outcome in words: what the attempt got, and the circuit after it."""
    name, attempt = answer["target"], answer.get("attempt")
    if attempt is None:
        return str(answer.get("message") or f"no probe of {name} was seen")
    got = f"status {attempt['status']}" if attempt.get("status") is not None else attempt.get("error") or "no answer"
    verdict = "succeeded" if attempt.get("outcome") == "success" else "failed"
    text = f"probe of {name} {verdict}: {got} in {float(attempt['latencyMs']):.1f} ms (event {attempt['eventId']})"
    circuit = str(answer.get("circuit", "")).replace("_", "-")
    until = answer.get("circuitUntil")
    return f"{text}; the circuit is {circuit}" + (f" until {until}" if until and circuit == "open" else "")


def probe(  # noqa: PLR0917 -- typer maps each option to a parameter
    target: str = TARGET,
    wait: float = typer.Option(30.0, "--wait", min=0.0, max=120.0, help="Seconds to wait for the probe's answer."),
    url: str | None = URL,
    ingest_key: str | None = INGEST_KEY,
    ca_bundle: Path | None = CA_BUNDLE,
    output: render.OutputFormat = OUTPUT,
) -> None:
    """Probe an open circuit now: its next pending delivery is sent at once, and its outcome shown.

    A success closes the circuit; a failure opens it again for twice as long (exit 1). With nothing
    pending the circuit stays half-open and the next delivery is the probe. A closed circuit is refused
    (exit 1: nothing to probe).
    """
    answer = call_router(Connection(url, ingest_key, ca_bundle), lambda client: client.probe(target, wait_s=wait))
    attempt = answer.get("attempt")
    if output is render.OutputFormat.JSON:
        render.print_json(answer)
    elif attempt is None:
        render.info(describe_probe(answer))  # nothing pending, or another router sent it
    elif attempt.get("outcome") == "success":
        render.success(describe_probe(answer))
    else:
        render.warn(describe_probe(answer))
    if attempt is not None and attempt.get("outcome") != "success":
        raise typer.Exit(render.EXIT_ERROR)


def register(router_app: typer.Typer) -> None:
    """Add the target commands to the ``router`` group."""
    for name, command in (("enable", enable), ("pause", pause), ("resume", resume), ("probe", probe)):
        router_app.command(name)(command)
