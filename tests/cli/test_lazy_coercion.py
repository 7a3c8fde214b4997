"""`cli.lazy_coercion` changes no parsed value and no error: the same app with and without it answers alike."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cxone_eventbridge.cli.lazy_coercion import LightGroup, lighten
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


def _params(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Every parameter of a cxeb command tree (without side-effect callbacks), with its command and path."""
    for param in command.params:
        if param.callback is None:
            yield path, command, param
    for name, sub in getattr(command, "commands", {}).items():
        yield from _params(sub, (*path, name))


def _outcome(command: Any, param: Any, value: Any) -> tuple[str, str]:
    """What converting ``value`` gives: the value's repr, or the error's type and message."""
    ctx = command.context_class(command, info_name=command.name)
    try:
        return "value", repr(param.process_value(ctx, value))
    except Exception as exc:  # the outcome compared is whatever typer raises, message included
        return type(exc).__name__, str(exc)


_PLAIN = list(_params(typer.main.get_command(cxeb_app)))
_LIGHT_ROOT = typer.main.get_command(cxeb_app)
lighten(_LIGHT_ROOT)
_LIGHT = list(_params(_LIGHT_ROOT))
# What users type, and what trips conversions up: numbers in and out of bounds, floats, booleans' spellings,
# enum values in other cases, paths, URLs, CIDRs, empty text.
SAMPLES = [
    *["0", "-1", "1", "7", "65536", "1.5", "1e3", "nan", "true", "False", "yes", "json", "JSON", "table", "text"],
    *["", " ", ".", "/nonexistent/x", "http://127.0.0.1:8790", "10.0.0.0/8", "nope", "sqlite:///q.db"],
]


def _typed(param: Any, typed: str, times: int = 1) -> Any:
    """``typed`` as the parser hands it over: a tuple of texts for a multiple option."""
    return (typed,) * times if param.multiple or param.nargs == -1 else typed


def test_every_cxeb_option_has_a_plain_typer_twin() -> None:
    """The lightened tree and typer's own have the same parameters in the same places (none skipped below)."""
    assert [(path, param.name) for path, _, param in _LIGHT] == [(path, param.name) for path, _, param in _PLAIN]
    assert len(_PLAIN) > 150
    assert {type(param).__name__ for _, _, param in _LIGHT} <= {"_LightOption", "_LightArgument"}


@pytest.mark.parametrize("index", range(len(_PLAIN)), ids=[f"{' '.join(p)} {q.name}" for p, _, q in _PLAIN])
def test_real_cxeb_options_convert_as_typer_converts_them(index: int) -> None:
    """Each option of the real `cxeb` tree, not given, at its default and typed as each sample: the same value,
    or the same error and message, as typer's own conversion."""
    (_, plain_command, plain), (_, light_command, light) = _PLAIN[index], _LIGHT[index]
    for value in (None, plain.default, *(_typed(plain, sample) for sample in SAMPLES)):
        assert _outcome(light_command, light, value) == _outcome(plain_command, plain, value), value


@given(index=st.integers(min_value=0, max_value=len(_PLAIN) - 1), typed=st.text(max_size=16), times=st.integers(1, 3))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_real_cxeb_options_convert_any_text_as_typer_does(index: int, typed: str, times: int) -> None:
    """Any text typed for any option of the real `cxeb` tree (repeated for a multiple option): same outcome."""
    (_, plain_command, plain), (_, light_command, light) = _PLAIN[index], _LIGHT[index]
    value = _typed(plain, typed, times)
    assert _outcome(light_command, light, value) == _outcome(plain_command, plain, value)
