"""`cxeb router serve --config router.toml` and `cxeb router config --example`: serve's options in a file.

A key is a serve option's long name without its dashes, kebab-case as typed on the command line
(``drain-deadline = 30``, ``allow-private = ["127.0.0.0/8"]``, ``no-audit-log = true``). The keys are read
from the serve command's own options (``file_keys``), so an option added to serve is accepted in the file,
shown by ``--example`` and documented at once. Values go through the option's own conversion and checks.

Precedence, as click's ``default_map`` gives it: flags on the command line > environment variables
(``CXEB_QUEUE_URL``, ``CXEB_INGEST_KEY``, ``CXEB_AUDIT_LOG``) > the file > built-in defaults. Strings may
be ``${env:NAME}`` references, resolved at start as in targets files; an ingest key written in plain text
in a file that group or others may read draws a warning. An unknown key gets "did you mean"; a bad value
names the file, line and key. Every problem of a file is reported in one run (exit 2).
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from cxone_eventbridge.cli import render
from cxone_eventbridge.exceptions import ConfigurationError

# Options whose value is a secret: shown as "(set)", and a plain-text one in a readable file is warned about.
SECRET_KEYS = frozenset({"ingest-key"})
# What the example shows, commented out, for an option that has no default (any other: a placeholder).
_EXAMPLES: dict[str, Any] = {
    "db": ".cxeb/router/queue.db",
    "queue": "postgresql://cxeb@127.0.0.1/cxeb",
    "targets": "targets.yaml",
    "tls-cert": "/etc/cxeb/tls/cert.pem",
    "tls-key": "/etc/cxeb/tls/key.pem",
    "ingest-key": "${env:CXEB_INGEST_KEY}",
    "ca-bundle": "/etc/cxeb/ca.pem",
    "allow-private": ["10.0.0.0/8"],
}
_NOT_IN_FILE = frozenset({"config", "help", "profile"})  # profile: the global option


def _cidrs(value: Any) -> None:
    from cxone_eventbridge.ssrf import EgressPolicy

    EgressPolicy.from_cidrs(value)


# Checks that serve makes later, made here too so that a bad value is reported with its file and line.
_VALUE_CHECKS: dict[str, Any] = {"allow-private": _cidrs}
_HEADER = """\
# cxeb router serve --config FILE: the options of `cxeb router serve`, by their long names without "--".
# Precedence: flags on the command line > environment variables (named below) > this file > defaults.
# Strings may be ${env:NAME} references, resolved at start: keep the ingest key out of the file.
# A commented-out key has no default; the value shown is an example."""


def file_keys(command: Any) -> dict[str, Any]:
    """The file key of every option of ``command`` (its first long name without ``--``), in the command's order."""
    keys: dict[str, Any] = {}
    for param in command.params:
        if param.name in _NOT_IN_FILE or not param.opts:
            continue
        long_names = [opt for opt in param.opts if opt.startswith("--")]
        if long_names:
            keys[long_names[0][2:]] = param
    return keys


def type_problem(param: Any, value: Any) -> str | None:
    """Why a literal file value cannot be the option's (``must be an integer, not a string``), or None.

    TOML values are typed, so the file's type must be the option's: ``true`` is no port and ``5`` no host.
    A ``${env:NAME}`` reference is text and is converted as the command line's text is.
    """
    from cxone_eventbridge.config_file import list_type_problem, value_type_problem

    annotation = param.type_descriptor.annotation
    if param.multiple or param.nargs == -1:
        (item_type,) = getattr(annotation, "__args__", (str,))
        return list_type_problem(item_type, value if isinstance(value, list) else [value])
    return value_type_problem(bool if getattr(param, "is_flag", False) else annotation, value)


def _resolved(value: Any, environ: Mapping[str, str], place: str) -> Any:
    from cxone_eventbridge.config_file import resolve_reference

    if isinstance(value, str):
        return resolve_reference(value, environ, place)
    if isinstance(value, list):
        return [_resolved(item, environ, place) for item in value]
    return value


def _unset_references(value: Any, environ: Mapping[str, str]) -> list[str]:
    """The ``${env:NAME}`` references in ``value`` whose variable ``environ`` does not set."""
    from cxone_eventbridge import secret_refs

    items = value if isinstance(value, list) else [value]
    names = [secret_refs.reference_name(item) for item in items if isinstance(item, str)]
    return [secret_refs.make_reference(name) for name in names if name is not None and name not in environ]


def _is_reference(value: Any) -> bool:
    from cxone_eventbridge import secret_refs

    return isinstance(value, str) and secret_refs.is_reference(value)


def load_serve_file(
    path: Path, command: Any, environ: Mapping[str, str] | None = None, *, unset: list[str] | None = None
) -> dict[str, Any]:
    """The file's values by parameter name, each checked by its option; ConfigurationError lists every problem.

    Each value is converted by the option itself in a context of its own that is never a completion's (in one,
    lazy_coercion leaves values unconverted), so ``--check`` rejects what ``serve --config`` rejects. With
    ``unset`` (``--check``, run in another environment than the service's), a reference to a variable that
    is not set is noted there (``FILE:LINE: key: ${env:NAME}``) and its key left out, instead of a problem.
    """
    from cxone_eventbridge.config_file import exposure_warning, read_toml, unknown_key, where

    env = os.environ if environ is None else environ
    data, text = read_toml(path)
    params = file_keys(command)
    ctx = command.context_class(command, info_name=command.name)
    values: dict[str, Any] = {}
    problems: list[str] = []
    literal_secrets: list[str] = []
    for key, raw in data.items():
        place = where(path, text, key)
        param = params.get(key)
        if param is None:
            problems.append(f"{place} {unknown_key(key, params)}")
            continue
        if isinstance(raw, dict):
            problems.append(f"{place}: is a table; serve's options are top-level keys")
            continue
        if key in SECRET_KEYS and isinstance(raw, str) and not _is_reference(raw):
            literal_secrets.append(key)
        literal = [item for item in raw if not _is_reference(item)] if isinstance(raw, list) else raw
        if not _is_reference(literal) and (problem := type_problem(param, literal)) is not None:
            problems.append(f"{place}: {problem}")
            continue
        if unset is not None and (missing := _unset_references(raw, env)):
            unset.append(f"{place}: {', '.join(missing)}")
            continue
        try:
            value = _resolved(raw, env, place)
        except ConfigurationError as exc:
            problems.append(str(exc))
            continue
        if (param.multiple or param.nargs == -1) and not isinstance(value, list):
            value = [value]
        try:
            param.process_value(ctx, value)
            if (check := _VALUE_CHECKS.get(key)) is not None:
                check(value)
        except typer.BadParameter as exc:
            problems.append(f"{place}: {exc.message}")
            continue
        except ValueError as exc:
            problems.append(f"{place}: {exc}")
            continue
        values[param.name] = value
    if problems:
        raise ConfigurationError("\n".join(problems))
    if (warning := exposure_warning(path, literal_secrets)) is not None:
        render.warn(warning)
    return values


def apply_config_file(ctx: typer.Context, value: Path | None) -> Path | None:
    """``--config``'s callback (eager): the file's values become the command's defaults (click's default_map)."""
    if value is None or ctx.resilient_parsing:
        return value
    try:
        values = load_serve_file(value, ctx.command)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return value


def audit_log_off(ctx: typer.Context, no_audit_log: bool) -> bool:
    """Whether serve writes no audit log: ``--no-audit-log``, unless a file's ``no-audit-log = true`` meets an
    ``--audit-log PATH`` or ``CXEB_AUDIT_LOG`` of higher precedence (asking for a log where it goes undoes
    the file's "none"). Both flags on one command line are refused."""
    off, path = (getattr(ctx.get_parameter_source(name), "name", None) for name in ("no_audit_log", "audit_log"))
    if no_audit_log and off == "COMMANDLINE" and path == "COMMANDLINE":
        raise ConfigurationError("give --audit-log PATH or --no-audit-log, not both")
    if no_audit_log and off == "DEFAULT_MAP":  # from the config file
        return path not in {"COMMANDLINE", "ENVIRONMENT"}
    return no_audit_log


SERVE_CONFIG = typer.Option(
    None,
    "--config",
    metavar="FILE",
    is_eager=True,
    expose_value=False,
    callback=apply_config_file,
    help="A TOML file of these options (keys: the long names without --); flags and env vars override it.",
)


def _toml(value: Any) -> str:
    """``value`` as TOML: strings (and paths) as basic strings, booleans, numbers, arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, Enum):
        value = value.value
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _printable(value: Any) -> Any:
    """A value fit to show: a URL's password (``postgresql://user:pw@...`` for --queue) as ``***``."""
    from cxone_eventbridge.config import url_without_password

    if isinstance(value, str) and "://" in value:
        return url_without_password(value)
    return value


def _file_value(value: Any) -> Any:
    """A default as the file writes it (paths and enums as strings), so that it loads back equal."""
    if isinstance(value, Path | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, tuple):
        return list(value)
    return value


def render_file(command: Any, values: Mapping[str, Any]) -> str:
    """A commented file with every option of ``command``: ``values`` set, the others commented out."""
    blocks = [_HEADER]
    for key, param in file_keys(command).items():
        lines = [f"# {line}" for line in textwrap.wrap(param.help or "", 100)]
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        lines.append(f"# --{key}" + (f" (env {', '.join(envvars)})" if envvars else ""))
        if isinstance(param.show_default, str):  # a default that depends on other options, as help shows it
            lines.append(f"# default: {param.show_default}")
        if key in values:
            lines.append(f"{key} = {_toml(values[key])}")
        else:
            placeholder = ["..."] if param.multiple else "..."
            lines.append(f"# {key} = {_toml(_EXAMPLES.get(key, placeholder))}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def example_file(command: Any) -> str:
    """Every option at its default (those without one commented out with an example)."""
    defaults = {
        key: _file_value(param.default)
        for key, param in file_keys(command).items()
        if param.default is not None and param.default not in ([], ())
    }
    return render_file(command, defaults)


def config_command(
    ctx: typer.Context,
    example: bool = typer.Option(False, "--example", help="Print a commented router.toml with every option."),
    check: Path | None = typer.Option(None, "--check", metavar="FILE", help="Check a file and show what it sets."),
) -> None:
    """Write or check the file that `cxeb router serve --config FILE` reads (every serve option, same names)."""
    parent = ctx.parent
    serve = getattr(parent.command, "commands", {}).get("serve") if parent is not None else None
    if serve is None:  # pragma: no cover - registered beside serve
        render.fail("the serve command is not registered", render.EXIT_ERROR)
    if example == (check is not None):
        render.fail("give one of --example or --check FILE", render.EXIT_INVALID_INPUT)
    if example:
        render.print_text(example_file(serve))
        return
    assert check is not None
    unset: list[str] = []
    try:
        values = load_serve_file(check, serve, unset=unset)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    names = {param.name: key for key, param in file_keys(serve).items()}
    for name, value in values.items():
        key = names[name]
        render.print_text(f"{key} = {'(set)' if key in SECRET_KEYS else _toml(_printable(value))}")
    for note in unset:  # the service's environment (its EnvironmentFile) may well set what this shell does not
        render.warn(f"{note}: not set here, so not checked; `router serve` needs it in its environment")
    not_checked = f"; {len(unset)} more from unset variables, not checked" if unset else ""
    render.success(f"{check}: {len(values)} option(s) set, all valid{not_checked}")


def register(router_app: typer.Typer) -> None:
    """Add ``config`` to the ``router`` group."""
    router_app.command("config")(config_command)
