"""Import: remote targets written as a targets file that a following ``plan`` shows as unchanged.

Secrets cannot be read back from the targets routes, so each authentication value becomes a
``${env:CXEB_<NAME>_AUTH_VALUE}`` reference: with the variable unset, ``plan`` reports the secret as
unknown rather than as a change; with it set, ``plan`` compares fingerprints. Signing secrets are left out,
and an omitted signing secret keeps the remote one. Targets are written by name, fields in wire order, so
the same remote targets always give the same file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from cxone_eventbridge import secret_refs
from cxone_eventbridge.models import AuthType, IntegrationTarget

_UNSAFE = re.compile(r"[^A-Z0-9]+")


class FileFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"

    @classmethod
    def for_path(cls, path: str) -> FileFormat:
        return cls.JSON if path.lower().endswith(".json") else cls.YAML


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """The file's text and the environment variables its references name (target name -> variable)."""

    text: str
    variables: dict[str, str]
    targets: int


def secret_variable_names(names: Iterable[str]) -> dict[str, str]:
    """Target name -> ``CXEB_<NAME>_AUTH_VALUE``, made unique with a numeric suffix, in name order."""
    chosen: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(set(names)):
        stem = _UNSAFE.sub("_", name.upper()).strip("_") or "TARGET"
        candidate = f"CXEB_{stem}_AUTH_VALUE"
        suffix = 2
        while candidate in used:
            candidate = f"CXEB_{stem}_{suffix}_AUTH_VALUE"
            suffix += 1
        used.add(candidate)
        chosen[name] = candidate
    return chosen


def target_document(target: IntegrationTarget, variable: str | None) -> dict[str, Any]:
    """One target as a targets-file mapping: what the file manages, with no server-set fields."""
    wire = target.to_wire()
    auth = wire["authentication"]
    authentication: dict[str, Any] = {"type": auth["type"]}
    if target.authentication.type is AuthType.API_KEY:
        authentication["headerName"] = auth["headerName"]
    if target.authentication.type is AuthType.OAUTH_CLIENT_CREDENTIALS and auth["oauth"] is not None:
        oauth = {key: value for key, value in auth["oauth"].items() if key != "clientSecret"}
        if variable is not None:
            oauth["clientSecret"] = secret_refs.make_reference(variable)
        authentication["oauth"] = oauth
    elif target.authentication.type is not AuthType.NONE and variable is not None:
        authentication["value"] = secret_refs.make_reference(variable)
    document: dict[str, Any] = {"name": wire["name"], "type": wire["type"], "endpoint": wire["endpoint"]}
    if wire["description"] is not None:
        document["description"] = wire["description"]
    document["authentication"] = authentication
    document["retryPolicy"] = wire["retryPolicy"]
    document["eventFilters"] = wire["eventFilters"]
    if wire["eventPattern"] is not None:
        document["eventPattern"] = wire["eventPattern"]
    for key in ("input", "inputPath", "inputTransformer", "maxInFlight", "rateLimitPerSecond"):
        if wire[key] is not None:
            document[key] = wire[key]
    return document


def render_targets_file(targets: Iterable[IntegrationTarget], *, file_format: FileFormat) -> ImportedFile:
    """The targets file text for the remote targets, sorted by name."""
    ordered = sorted(targets, key=lambda t: t.name)
    with_secrets = [t.name for t in ordered if t.authentication.type is not AuthType.NONE]
    variables = secret_variable_names(with_secrets)
    documents = [target_document(t, variables.get(t.name)) for t in ordered]
    if file_format is FileFormat.JSON:
        text = json.dumps(documents, indent=2, ensure_ascii=False) + "\n"
    else:
        header = "# Written by `cxeb import`. Secrets are ${env:NAME} references; set the variables to compare them.\n"
        text = header + yaml.safe_dump(documents, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return ImportedFile(text=text, variables=variables, targets=len(ordered))
