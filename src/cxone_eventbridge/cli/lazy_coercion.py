"""Help and tab completion without pydantic: option values that need no conversion skip typer's adapters.

typer (0.2x) converts every parsed option value through a pydantic ``TypeAdapter`` it builds on first use,
even a value that is already what the annotation says (``0`` for ``-v``, ``LogFormat.TEXT`` for
``--log-format``, ``None`` for an option not given). Printing a subcommand's help or completing a word
parses the root options first, so importing pydantic and building those adapters cost about 70 ms of the
0.22 s of CPU that ``cxeb targets --help`` took (cProfile, load 3). A value that is ``None``, or already an
exact instance of a plain annotation (``int``/``float`` without bounds, ``str``, an ``Enum``), is left as it
is here; anything else (strings from the command line, paths that must exist, bounded numbers) still goes
through typer's own conversion, so behaviour and error messages do not change.

``LightGroup`` is the root group's class (``typer.Typer(cls=LightGroup)``): before it parses its first
arguments it swaps the parameter classes of the whole command tree (``lighten``), once, after typer has added
its completion options. Nothing changes for typer versions without runtime coercion (their parameters have no
``type_descriptor``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from typer.core import TyperArgument, TyperGroup, TyperOption

_TYPER_CONVERTS = object()  # the value needs typer's own conversion (and its error message if it fails)
_COMPLETION_MISSING = object()  # a required value not typed yet while completing: click makes it None


def _plain_conversion(param: TyperOption | TyperArgument, ctx: Any, value: Any) -> Any:
    """What typer's conversion would return for ``value`` when that is certain without it, else _TYPER_CONVERTS.

    Certain: ``None`` (typer returns ``()`` for a multiple option), an exact instance of a plain annotation,
    and an Enum's exact value as a string (``--log-format json``), which typer's choice matching returns as
    that member whatever its case sensitivity. A required value that is missing is typer's to report, except
    while completing a word (resilient parsing), where click turns that error into ``None`` anyway. While
    completing, values typed before the word (``--config router.toml``, ``--port 80``) are not converted at
    all: completion reads no value (no command here completes from another option's value), and a failed
    conversion would only be swallowed.
    """
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    if info.parser is not None:
        return _TYPER_CONVERTS
    annotation = descriptor.annotation
    if param.required and param.value_is_missing(value):
        return _COMPLETION_MISSING if ctx.resilient_parsing else _TYPER_CONVERTS
    if value is None:
        return () if param.multiple or param.nargs == -1 else None
    if ctx.resilient_parsing:
        return value
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        if isinstance(value, annotation):
            return value
        if isinstance(value, str) and ctx.token_normalize_func is None:
            return next((member for member in annotation if str(member.value) == value), _TYPER_CONVERTS)
        return _TYPER_CONVERTS
    if annotation in (int, float) and type(value) is annotation and info.min is None and info.max is None:
        return value
    if annotation is str and type(value) is str:
        return value
    return _TYPER_CONVERTS


def _process_value(
    param: TyperOption | TyperArgument, ctx: Any, value: Any, typer_process: Callable[[Any, Any], Any]
) -> Any:
    converted = _plain_conversion(param, ctx, value)
    if converted is _TYPER_CONVERTS:
        return typer_process(ctx, value)
    if converted is _COMPLETION_MISSING:
        return None
    return converted if param.callback is None else param.callback(ctx, param, converted)


class _LightOption(TyperOption):
    def process_value(self, ctx: Any, value: Any) -> Any:
        return _process_value(self, ctx, value, super().process_value)


class _LightArgument(TyperArgument):
    def process_value(self, ctx: Any, value: Any) -> Any:
        return _process_value(self, ctx, value, super().process_value)


class _HelpNames:
    """What ``Command.get_help_option`` reads of a context: the help option's names, as click's Context sets them."""

    def __init__(self, names: list[str]) -> None:
        self.help_option_names = names


def lighten(command: Any, *, help_names: list[str] | None = None) -> None:
    """Give every typer parameter of ``command`` and its subcommands the conversion-skipping class.

    The ``--help`` option is made here, as the command would make it on first use, so that it is swapped too.
    """
    names = command.context_settings.get("help_option_names", help_names or ["--help"])
    command.get_help_option(_HelpNames(names))
    params = [*command.params, getattr(command, "_help_option", None)]
    for param in params:
        if not hasattr(param, "type_descriptor"):
            continue
        if type(param) is TyperOption:
            param.__class__ = _LightOption
        elif type(param) is TyperArgument:
            param.__class__ = _LightArgument
    for sub in getattr(command, "commands", {}).values():
        lighten(sub, help_names=names)


class LightGroup(TyperGroup):
    """The root group: lightens its command tree on first use (typer appends options after building it)."""

    _lightened = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not self._lightened:
            lighten(self)
            self._lightened = True
        return super().parse_args(ctx, args)
