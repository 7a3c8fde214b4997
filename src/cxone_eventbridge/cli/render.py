"""The CLI's output: the only place in the package that prints.

stdout carries results (tables or JSON); stderr carries messages, warnings and errors. ``NO_COLOR`` is
honoured by rich itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID_INPUT = 2

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


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
    """Print a rich table to stdout. Columns named in ``fold`` break long values over lines instead of
    cutting them short with an ellipsis (ids and URLs must stay whole to be copied)."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold" if column in fold else "ellipsis")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout.print(table)


def info(message: str) -> None:
    """A progress or result message on stderr (keeps stdout clean for data)."""
    stderr.print(message, highlight=False, markup=False)


def success(message: str) -> None:
    stderr.print(f"[green]{_escape(message)}[/green]", highlight=False)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {_escape(message)}", highlight=False)


def error(message: str) -> None:
    stderr.print(f"[red]error:[/red] {_escape(message)}", highlight=False)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print an error and exit with ``code``."""
    error(message)
    raise typer.Exit(code)


def _escape(text: str) -> str:
    return escape(text)
