"""Targets files: one loader for every command that reads targets (YAML or JSON, one target or a list).

Errors name the file, the line and the wire-form field (``targets.yaml:12: [1].retryPolicy.maxRetries: ...``)
and all of a file's errors are reported in one run, duplicate names among them; a misspelt field name or
filter operator gets "did you mean". Secrets may be ``${env:NAME}`` references; how they are resolved
depends on the command (see ``SecretResolution``).

Warnings, not errors: a plain-text secret; a target with neither ``eventPattern`` nor ``eventFilters``
(it receives every event); an endpoint at a loopback, private or metadata address (the router and the
sandbox's test call refuse it unless told otherwise); server-set fields (``id``, ``status``...), which
are ignored, so that ``cxeb targets get -o json`` output can be edited and read back unchanged.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from cxone_eventbridge import secret_refs
from cxone_eventbridge.exceptions import FieldError, TargetsFileError
from cxone_eventbridge.matching.filters import FilterOperator
from cxone_eventbridge.models import (
    EventFilter,
    IntegrationTarget,
    OAuthClientCredentials,
    RetryPolicy,
    TargetAuthentication,
    field_errors,
)
from cxone_eventbridge.ssrf import EgressPolicy
from cxone_eventbridge.suggest import did_you_mean

MAX_FILE_BYTES = 5 << 20
_MAX_NODES = 200_000
SERVER_SET_FIELDS = (
    "id",
    "status",
    "createdAt",
    "updatedAt",
    "valueFingerprint",
    "signingSecretFingerprint",
    "previousSigningSecret",
)
SECRET_PATHS = (("authentication", "value"), ("authentication", "oauth", "clientSecret"), ("signingSecret",))
# Every field name a targets file may use, for "did you mean" on a misspelt one.
KNOWN_FIELDS = tuple(
    sorted(
        {
            to_camel(name)
            for model in (IntegrationTarget, TargetAuthentication, OAuthClientCredentials, RetryPolicy, EventFilter)
            for name in model.model_fields
        }
    )
)
OPERATORS = tuple(operator.value for operator in FilterOperator)


class SecretResolution(StrEnum):
    """How ``${env:NAME}`` references are treated."""

    OFFLINE = "offline"  # validate: check the syntax, warn on unset variables, substitute nothing
    AVAILABLE = "available"  # plan: substitute set variables; unset ones stay references ("unknown")
    REQUIRED = "required"  # create/apply: every reference must resolve; an unset one is an input error


@dataclass(frozen=True)
class LoadedTargets:
    """What a targets file holds, with the warnings it drew."""

    path: Path
    targets: list[IntegrationTarget]
    warnings: list[str] = field(default_factory=list)
    # target name -> wire paths of secrets whose variables are unset (plan shows them as unknown)
    unresolved: dict[str, list[str]] = field(default_factory=dict)


Path_ = tuple[int | str, ...]


def _collect_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[str]) -> None:
    stack: list[tuple[yaml.Node, Path_]] = [(node, path)]
    seen = 0
    while stack:
        current, where = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            raise TargetsFileError(f"the file has more than {_MAX_NODES} YAML nodes (aliases expanded)")
        lines.setdefault(where, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in current.value:
                key = str(key_node.value)
                camel = to_camel(key) if "_" in key else key
                if camel in keys:
                    problems.append(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                keys.add(camel)
                child = (*where, camel)
                lines[child] = key_node.start_mark.line + 1
                stack.append((value_node, child))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                stack.append((item, (*where, index)))


def _parse(path: Path, text: str) -> tuple[Any, dict[Path_, int]]:
    if path.suffix.lower() == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise TargetsFileError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise TargetsFileError(f"{path}{where}: invalid YAML: {problem}") from exc
    lines: dict[Path_, int] = {}
    problems: list[str] = []
    if root is not None:
        _collect_lines(root, (), lines, problems)
    if problems:
        raise TargetsFileError(f"{path}: the file is ambiguous", [FieldError("", p) for p in problems])
    return data, lines


def _line_of(lines: dict[Path_, int], where: Path_) -> int | None:
    for end in range(len(where), -1, -1):
        if (line := lines.get(where[:end])) is not None:
            return line
    return None


def _wire_path(where: Path_) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _get(item: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    current: Any = item
    for key in keys:
        if not isinstance(current, Mapping):
            return None
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        current = current.get(key, current.get(snake))
    return current


def _set(item: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    current = item
    for key in keys[:-1]:
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        current = current[key] if key in current else current[snake]
    last = keys[-1]
    snake_last = "".join(f"_{c.lower()}" if c.isupper() else c for c in last)
    current[snake_last if snake_last in current and last not in current else last] = value


def load_targets_file(
    path: str | Path,
    *,
    environ: Mapping[str, str],
    resolution: SecretResolution,
    forbid_plaintext_secrets: bool = False,
    advice: bool = True,
    keep_ids: bool = False,
) -> LoadedTargets:
    """Read, parse and validate a targets file; raise TargetsFileError listing every problem.

    ``advice=False`` leaves out the advisory warnings (a catch-all target, an endpoint at a private
    address): for a caller that checks endpoints against its own egress policy (``router serve`` knows
    its ``--allow-private`` and announces refusals itself; the demo admits its loopback receivers).
    ``keep_ids=True`` keeps an entry's control-plane ``id`` (the router names targets by it) instead of
    ignoring it as set by the server.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TargetsFileError(f"{path}: the file is {size} bytes; the limit is {MAX_FILE_BYTES}")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TargetsFileError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise TargetsFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    data, lines = _parse(path, text)
    return validate_targets_data(
        data,
        path=path,
        lines=lines,
        environ=environ,
        resolution=resolution,
        forbid_plaintext_secrets=forbid_plaintext_secrets,
        advice=advice,
        keep_ids=keep_ids,
    )


def validate_targets_data(
    data: Any,
    *,
    path: Path,
    lines: dict[Path_, int] | None = None,
    environ: Mapping[str, str],
    resolution: SecretResolution,
    forbid_plaintext_secrets: bool = False,
    advice: bool = True,
    keep_ids: bool = False,
) -> LoadedTargets:
    """Validate already-parsed targets data (a mapping or a list of mappings)."""
    lines = lines or {}
    if data is None:
        raise TargetsFileError(f"{path}: the file is empty; write one target (a mapping) or a list of them")
    as_list = isinstance(data, list)
    items: list[Any] = data if as_list else [data]
    if not as_list and not isinstance(data, dict):
        raise TargetsFileError(f"{path}: expected a target (a mapping) or a list of targets")
    errors: list[FieldError] = []
    warnings: list[str] = []
    unresolved: dict[str, list[str]] = {}
    targets: list[IntegrationTarget] = []
    names: dict[str, int] = {}

    def where_text(where: Path_) -> str:
        line = _line_of(lines, where)
        return f"{path}:{line}" if line is not None else str(path)

    for index, raw in enumerate(items):
        base: Path_ = (index,) if as_list else ()
        if not isinstance(raw, dict):
            errors.append(FieldError(f"{where_text(base)}: {_wire_path(base) or '(top)'}", "must be a mapping"))
            continue
        item: dict[str, Any] = json.loads(json.dumps(raw, default=str))  # a deep copy we may edit
        ignored = [
            server_field
            for server_field in SERVER_SET_FIELDS
            if not (keep_ids and server_field == "id") and item.pop(server_field, None) is not None
        ]
        if ignored:
            where = (*base, ignored[0])
            warnings.append(f"{where_text(where)}: {', '.join(ignored)}: set by the server; ignored")
        raw_name = item.get("name")
        if isinstance(raw_name, str) and raw_name in names:
            where = (*base, "name")
            errors.append(
                FieldError(
                    f"{where_text(where)}: {_wire_path(where)}",
                    f"duplicate target name {raw_name!r} (also item [{names[raw_name]}])",
                )
            )
        elif isinstance(raw_name, str):
            names[raw_name] = index
        item_unresolved: list[str] = []
        for keys in SECRET_PATHS:
            value = _get(item, keys)
            if not isinstance(value, str) or not value:
                continue
            where = (*base, *keys)
            label = f"{where_text(where)}: {_wire_path(where)}"
            if (problem := secret_refs.reference_syntax_error(value)) is not None:
                errors.append(FieldError(label, problem))
                continue
            name = secret_refs.reference_name(value)
            if name is None:
                message = "holds a plain-text secret; use a ${env:NAME} reference"
                if forbid_plaintext_secrets:
                    errors.append(FieldError(label, message))
                else:
                    warnings.append(f"{label} {message}")
                continue
            resolved = environ.get(name)
            if resolved is None:
                if resolution is SecretResolution.REQUIRED:
                    errors.append(FieldError(label, f"environment variable {name} is not set"))
                else:
                    if resolution is SecretResolution.OFFLINE:
                        warnings.append(f"{label}: environment variable {name} is not set")
                    item_unresolved.append(_wire_path(keys))
            elif resolution is not SecretResolution.OFFLINE:
                _set(item, keys, resolved)
        try:
            target = IntegrationTarget.model_validate(item)
        except ValidationError as exc:
            for error in field_errors(exc):
                where = (*base, *_split_path(error.field))
                message = error.message + _did_you_mean(item, _split_path(error.field), error.message)
                errors.append(FieldError(f"{where_text(where)}: {_wire_path(where)}", message))
            continue
        if names.get(target.name) != index:
            continue  # a duplicate name, reported above
        label = f"{where_text(base)}: {_wire_path(base) or 'target'} {target.name!r}"
        if advice and not target.event_pattern and not target.event_filters:
            warnings.append(f"{label} has neither eventPattern nor eventFilters: it receives every event")
        if advice and (refusal := endpoint_refusal(target.endpoint)) is not None:
            warnings.append(f"{label}: {refusal}")
        if item_unresolved:
            unresolved[target.name] = item_unresolved
        targets.append(target)
    if errors:
        count = len(errors)
        raise TargetsFileError(f"{path}: {count} invalid field{'s' if count > 1 else ''}", errors)
    return LoadedTargets(path=path, targets=targets, warnings=warnings, unresolved=unresolved)


def _did_you_mean(item: Mapping[str, Any], path: Path_, message: str) -> str:
    """``; did you mean 'x'?`` for a misspelt field name or filter operator, else nothing."""
    if not path:
        return ""
    if message == "is not a known field":
        candidates, written = KNOWN_FIELDS, str(path[-1])
    elif path[-1] == "operator":
        value: Any = item
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return ""
        candidates, written = OPERATORS, str(value)
    else:
        return ""
    return did_you_mean(written, candidates)


def endpoint_refusal(endpoint: str) -> str | None:
    """Why the router would refuse ``endpoint``'s address by default, or None (names are checked when resolved)."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    reason = EgressPolicy().why_refused(address)
    if reason is None:
        return None
    prefix = 32 if address.version == 4 else 128
    return (
        f"endpoint {endpoint} is {reason}: the router and the sandbox's test call refuse it unless started "
        f"with --allow-private {address}/{prefix}"
    )


def _split_path(path: str) -> Path_:
    parts: list[int | str] = []
    for dotted in path.split("."):
        name, _, rest = dotted.partition("[")
        if name:
            parts.append(name)
        for index in rest.replace("]", "").split("[") if rest else []:
            if index.isdigit():
                parts.append(int(index))
    return tuple(parts)
