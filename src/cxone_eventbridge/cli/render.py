"""The CLI's output: the only place in the package that prints.

stdout carries results (tables or JSON); stderr carries messages, warnings and errors. ``NO_COLOR`` is
honoured by rich itself. The rich consoles (``render.stdout``, ``render.stderr``) are made on first use:
``cxeb --help`` and tab completion never import rich.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID_INPUT = 2


@cache
def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def __getattr__(name: str) -> Console:
    if name in {"stdout", "stderr"}:
        return _console(stderr=name == "stderr")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def print_json(data: Any) -> None:
    """Print JSON to stdout, plainly (no colour codes), so pipelines can parse it."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def print_table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, fold: Sequence[str] = ()
) -> None:
    """Print a rich table to stdout; no value is ever cut short with an ellipsis. When ``fold`` names
    columns, only those wrap on a narrow terminal and the others keep each value on one line."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        # Nothing is ever cut short with an ellipsis: an id or a URL must stay whole to be copied.
        table.add_column(column, overflow="fold", no_wrap=bool(fold) and column not in fold)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    _console(stderr=False).print(table)


def print_aligned(rows: Sequence[Sequence[str]]) -> None:
    """Rows (the first a header) as plain lines on stdout, each column padded to its widest value, the last
    not padded. For listings whose ids must stay whole at any width: a table squeezed into 80 columns cuts
    or folds them; a line longer than the terminal is wrapped by the terminal, so it stays one line to copy,
    grep or cut."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    padded = ([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]] for row in rows)
    print_lines(["  ".join(cells).rstrip() for cells in padded])


def print_lines(lines: Sequence[str]) -> None:
    """Plain result lines on stdout (a plan, a drift report): no markup, no highlighting, never cut."""
    for line in lines:
        _console(stderr=False).print(line, highlight=False, markup=False, overflow="ignore", crop=False)


def print_text(text: str) -> None:
    """Text on stdout exactly as given (a file to save, such as an example config): no wrapping, no markup."""
    typer.echo(text, nl=not text.endswith("\n"))


def info(message: str) -> None:
    """A progress or result message on stderr (keeps stdout clean for data)."""
    _console(stderr=True).print(message, highlight=False, markup=False)


def success(message: str) -> None:
    _console(stderr=True).print(f"[green]{_escape(message)}[/green]", highlight=False)


def warn(message: str) -> None:
    _console(stderr=True).print(f"[yellow]warning:[/yellow] {_escape(message)}", highlight=False)


def error(message: str) -> None:
    _console(stderr=True).print(f"[red]error:[/red] {_escape(message)}", highlight=False)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print an error and exit with ``code``."""
    error(message)
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
