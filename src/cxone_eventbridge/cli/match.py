"""`cxeb match`: test a pattern or a targets file against events, sending nothing.

Like ``aws events test-event-pattern``: ``cxeb match --pattern P.json EVENT.json`` exits 0 when the event
matches, 1 when it does not and 2 when the pattern or the event is invalid. ``cxeb match -f
targets.yaml EVENT.json|-`` says which targets each event would reach and what each would receive after
its input transformer. The events are one JSON object, or JSON lines (one event per line); with several,
the exit code is 0 when at least one matched.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.exceptions import InvalidPatternError, TargetsFileError
from cxone_eventbridge.wire import loads

_BODY_COLUMN_CHARS = 120


def read_events(text: str, source: str) -> list[tuple[int, dict[str, Any]]]:
    """The events of ``text`` with their line numbers: one JSON object, or one object per line.

    Exits 2 naming the line of anything that is not a JSON object.
    """
    try:
        whole = loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [(1, whole)]
    events: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = loads(line)
        except ValueError as exc:
            render.fail(f"{source}:{number}: not valid JSON: {exc}", render.EXIT_INVALID_INPUT)
        if not isinstance(event, dict):
            render.fail(f"{source}:{number}: an event must be a JSON object", render.EXIT_INVALID_INPUT)
        events.append((number, event))
    if not events:
        render.fail(f"{source}: no events (one JSON object, or one per line)", render.EXIT_INVALID_INPUT)
    return events


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        render.fail(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}", render.EXIT_INVALID_INPUT)


def _pattern(option: str) -> Any:
    """``--pattern`` as a file of JSON, or inline JSON when it starts with ``{``."""
    from cxone_eventbridge.matching import compile_pattern

    text = option if option.lstrip().startswith("{") else _read_text(option)
    try:
        return compile_pattern(text)
    except InvalidPatternError as exc:
        render.fail(f"invalid pattern: {exc}", render.EXIT_INVALID_INPUT)


def _event_id(event: dict[str, Any]) -> str:
    event_id = event.get("id")
    return event_id if isinstance(event_id, str) else ""


def match(
    events: str = typer.Argument(..., help="A file of one JSON event or JSON lines, or - for stdin."),
    pattern: str | None = typer.Option(None, "--pattern", help="An event pattern: a JSON file, or inline JSON."),
    targets_file: Path | None = typer.Option(
        None, "--file", "-f", help="A targets file: which targets each event reaches and what each receives."
    ),
    output: render.OutputFormat = typer.Option(render.OutputFormat.TABLE, "--output", "-o", help="table or json."),
) -> None:
    """Test a pattern (--pattern) or a targets file (-f) against events; nothing is sent.

    Exit 0: an event matched; 1: none matched; 2: invalid pattern, targets file or event.
    """
    from cxone_eventbridge.cli.context import all_targets, load_targets
    from cxone_eventbridge.iac.targets_file import SecretResolution
    from cxone_eventbridge.matching import RoutingTable
    from cxone_eventbridge.preview import preview

    if (pattern is None) == (targets_file is None):
        render.fail("give exactly one of --pattern and -f/--file", render.EXIT_INVALID_INPUT)
    source = "stdin" if events == "-" else events
    if pattern is not None:
        compiled = _pattern(pattern)
        stream = read_events(_read_text(events), source)
        results = [(number, event, compiled.matches(event)) for number, event in stream]
        _print_pattern_results(results, single=len(stream) == 1, output=output)
        raise typer.Exit(render.EXIT_OK if any(matched for _, _, matched in results) else render.EXIT_ERROR)
    assert targets_file is not None
    try:
        targets = all_targets(load_targets([targets_file], resolution=SecretResolution.OFFLINE))
    except TargetsFileError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    stream = read_events(_read_text(events), source)
    by_name = {target.name: target for target in targets}
    table = RoutingTable(targets)
    now = time.time()
    reports = []
    for number, event in stream:
        previews = preview([by_name[name] for name in table.match(event)], event, now=now)
        reports.append(
            {
                "line": number,
                "event": _event_id(event),
                "matched": [p.target for p in previews],
                "deliveries": [p.to_wire() for p in previews],
            }
        )
    _print_target_reports(reports, single=len(stream) == 1, output=output)
    raise typer.Exit(render.EXIT_OK if any(report["matched"] for report in reports) else render.EXIT_ERROR)


def _print_pattern_results(
    results: list[tuple[int, dict[str, Any], bool]], *, single: bool, output: render.OutputFormat
) -> None:
    rows: list[dict[str, Any]] = [
        {"line": number, "event": _event_id(event), "match": matched} for number, event, matched in results
    ]
    if output is render.OutputFormat.JSON:
        render.print_json({"match": rows[0]["match"]} if single else rows)
        return
    if single:
        render.info("match" if rows[0]["match"] else "no match")
        return
    render.print_table(None, ["line", "event", "match"], [[r["line"], r["event"], r["match"]] for r in rows])
    matched = sum(1 for r in rows if r["match"])
    render.info(f"{matched} of {len(rows)} events matched")


def _print_target_reports(reports: list[dict[str, Any]], *, single: bool, output: render.OutputFormat) -> None:
    if output is render.OutputFormat.JSON:
        render.print_json(reports[0] if single else reports)
        return
    rows = []
    for report in reports:
        if not report["deliveries"]:
            rows.append([report["line"], report["event"], "(no target)", "", ""])
        for delivery in report["deliveries"]:
            body = delivery["body"]
            text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            if len(text) > _BODY_COLUMN_CHARS:
                text = text[: _BODY_COLUMN_CHARS - 1] + "…"
            rows.append([report["line"], report["event"], delivery["target"], delivery["contentType"], text])
    render.print_table(None, ["line", "event", "target", "content type", "body"], rows, fold=["body"])
    reached = sum(1 for report in reports if report["matched"])
    render.info(f"{reached} of {len(reports)} events reach a target")


def register(app: typer.Typer) -> None:
    """Add ``cxeb match`` to the root app."""
    app.command("match")(match)
