"""`cli.lazy_coercion` changes no parsed value and no error: the same app with and without it answers alike."""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cxone_eventbridge.cli.lazy_coercion import LightGroup
from cxone_eventbridge.cli.main import app as cxeb_app


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


def _app(cls: type[typer.core.TyperGroup] | None) -> typer.Typer:
    app = typer.Typer(cls=cls) if cls else typer.Typer()

    @app.callback()
    def root(verbose: int = typer.Option(0, "-v", count=True)) -> None:
        typer.echo(f"root verbose={verbose!r}")

    @app.command()
    def show(
        name: str = typer.Argument(...),
        colour: Colour = typer.Option(Colour.RED),
        loose: Colour = typer.Option("blue", case_sensitive=False),
        count: int = typer.Option(3),
        bounded: int = typer.Option(5, min=1, max=9),
        ratio: float = typer.Option(0.5),
        tags: list[str] = typer.Option([], "--tag"),
        maybe: str | None = typer.Option(None),
        path: Path = typer.Option(Path("."), exists=True),
    ) -> None:
        values = {
            "name": name,
            "colour": repr(colour),
            "loose": repr(loose),
            "count": repr(count),
            "bounded": repr(bounded),
            "ratio": repr(ratio),
            "tags": tags,
            "maybe": maybe,
            "path": str(path),
        }
        typer.echo(json.dumps(values, sort_keys=True))

    @app.command()
    def other() -> None:
        typer.echo("other")

    return app


ARGS = [
    ["show", "x"],
    ["-vv", "show", "x", "--colour", "blue", "--loose", "RED", "--count", "7", "--ratio", "2"],
    ["show", "x", "--tag", "a", "--tag", "b", "--maybe", "m", "--bounded", "9"],
    ["show", "x", "--colour", "BLUE"],
    ["show", "x", "--colour", "green"],
    ["show", "x", "--bounded", "0"],
    ["show", "x", "--count", "many"],
    ["show", "x", "--path", "/does/not/exist"],
    ["show"],
    ["show", "--help"],
    ["other"],
]


@pytest.mark.parametrize("args", ARGS, ids=[" ".join(a) for a in ARGS])
def test_light_group_parses_as_typer_does(args: list[str]) -> None:
    """Values, exit codes and error messages are typer's own for defaults, typed values and mistakes alike."""
    plain = CliRunner().invoke(_app(None), args)
    light = CliRunner().invoke(_app(LightGroup), args)
    assert (light.exit_code, light.output) == (plain.exit_code, plain.output)
    assert light.exception is None or isinstance(light.exception, SystemExit)


def test_root_options_still_reach_the_cxeb_callback() -> None:
    """`-vv --log-format json` before a command still sets debug logging as JSON lines."""
    result = CliRunner().invoke(cxeb_app, ["-vv", "--log-format", "json", "match", "--help"])
    assert result.exit_code == 0
    logger = logging.getLogger("cxone_eventbridge")
    assert logger.level == logging.DEBUG
    assert type(logger.handlers[0].formatter).__name__ == "JsonLinesFormatter"
    bad = CliRunner().invoke(cxeb_app, ["--log-format", "xml", "match", "--help"])
    assert bad.exit_code == 2
    assert "'xml' is not one of" in bad.output


@pytest.mark.parametrize("words", ["prog show x --count 5 --co", "prog -v show x --colour blue --", "prog sh"])
def test_completion_answers_as_typer_does(words: str) -> None:
    """Tab completion (values typed before the word left unconverted) offers what plain typer offers."""
    env = {"_PROG_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    plain = CliRunner().invoke(_app(None), [], env=env, prog_name="prog")
    light = CliRunner().invoke(_app(LightGroup), [], env=env, prog_name="prog")
    assert light.output == plain.output
    assert light.output.strip()
