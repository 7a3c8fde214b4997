"""Terraform rendering: remote targets as a state file (format version 4) and a ``.tf.json`` configuration.

Pure functions over models; ``iac.export`` does the file I/O. What Terraform needs from us:

- The state is format version 4 (Terraform refuses anything else) and names a ``terraform_version`` no
  newer than the reader (1.5.0 by default: Terraform refuses a state written by a newer version).
- ``lineage`` identifies one state's history: it is kept across exports into the same directory, and
  ``serial`` rises only when the content changes, so the same targets give byte-identical files.
- Secrets are never written. ``authentication.value`` and ``signing_secret`` are null in the attributes and
  listed in ``sensitive_attributes``; the remote ``valueFingerprint``, ``signing_secret_fingerprint`` and a
  rotated-out signing secret's fingerprint and expiry (``previous_signing_secret``) are kept so drift can
  see a rotation.
- Resource and output names must be Terraform identifiers; target names are free text, so each target gets
  a stable identifier derived from its name (``resource_names``).

There is no public ``nice/cxone`` provider: the state is readable by Terraform itself (``terraform state
list``, ``terraform_remote_state``), and the configuration is what such a provider would take.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cxone_eventbridge.defaults import DEFAULT_TERRAFORM_VERSION
from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.models import IntegrationTarget

STATE_FILE = "terraform.tfstate"
CONFIG_FILE = "main.tf.json"
STATE_FORMAT_VERSION = 4
PROVIDER_SOURCE = "nice/cxone"
PROVIDER_LOCAL_NAME = "cxone"
RESOURCE_TYPE = "cxone_integration_target"
PROVIDER_ADDRESS = f'provider["registry.terraform.io/{PROVIDER_SOURCE}"]'
TARGET_IDS_OUTPUT = "target_ids"
# Attributes the server sets as a matter of course: not drift.
SERVER_MANAGED_ATTRIBUTES = frozenset({"status", "created_at", "updated_at"})
# Attribute paths of secrets: their values are never written, only marked.
SECRET_ATTRIBUTE_PATHS: tuple[tuple[str, ...], ...] = (
    ("authentication", "value"),
    ("authentication", "oauth", "client_secret"),
    ("signing_secret",),
)

_IDENTIFIER_UNSAFE = re.compile(r"[^a-z0-9_]+")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


def resource_names(targets: Iterable[IntegrationTarget]) -> dict[str, str]:
    """Target name -> a unique Terraform identifier, stable for a given set of names."""
    names: dict[str, str] = {}
    used: set[str] = set()
    bases: dict[str, str] = {}
    for name in {target.name for target in targets}:
        base = _IDENTIFIER_UNSAFE.sub("_", name.lower()).strip("_") or "target"
        bases[name] = base if base[0].isalpha() else f"t_{base}"
    # A name that already is an identifier keeps it; the others queue by name. Same names, same result.
    for name in sorted(bases, key=lambda n: (bases[n] != n, n)):
        base = bases[name]
        candidate = base
        if candidate in used:
            candidate = f"{base}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        used.add(candidate)
        names[name] = candidate
    return names


def target_attributes(target: IntegrationTarget) -> dict[str, Any]:
    """A target as the resource's state attributes (snake_case, secrets null, JSON-valued fields as text)."""
    wire = target.to_wire()
    auth = wire["authentication"]
    policy = wire["retryPolicy"]
    attributes: dict[str, Any] = {
        "authentication": {
            "header_name": auth["headerName"],
            "type": auth["type"],
            "value": None,
            "value_fingerprint": auth["valueFingerprint"],
            "oauth": _oauth_attributes(auth["oauth"]),
        },
        "created_at": wire["createdAt"],
        "description": wire["description"],
        "endpoint": wire["endpoint"],
        "event_filters": [
            {"field": f["field"], "operator": f["operator"], "value": _json_text(f["value"])}
            for f in wire["eventFilters"]
        ],
        "event_pattern": None if wire["eventPattern"] is None else _json_text(wire["eventPattern"]),
        "id": wire["id"],
        "input": wire["input"],
        "input_path": wire["inputPath"],
        "input_transformer": None
        if wire["inputTransformer"] is None
        else {
            "input_paths_map": wire["inputTransformer"]["inputPathsMap"],
            "input_template": wire["inputTransformer"]["inputTemplate"],
        },
        "max_in_flight": wire["maxInFlight"],
        "name": wire["name"],
        "rate_limit_per_second": wire["rateLimitPerSecond"],
        "retry_policy": {
            "backoff_strategy": policy["backoffStrategy"],
            "max_retries": policy["maxRetries"],
            "timeout_ms": policy["timeoutMs"],
        },
        "signing_secret": None,
        "signing_secret_fingerprint": wire["signingSecretFingerprint"],
        "previous_signing_secret": _previous_secret(wire["previousSigningSecret"]),
        "status": wire["status"],
        "type": wire["type"],
        "updated_at": wire["updatedAt"],
    }
    return attributes


def _oauth_attributes(oauth: dict[str, Any] | None) -> dict[str, Any] | None:
    """An OAuth target's token settings (the client secret never)."""
    if oauth is None:
        return None
    return {
        "client_id": oauth["clientId"],
        "client_secret": None,
        "scopes": oauth["scopes"],
        "token_form_fields": oauth["tokenFormFields"],
        "token_headers": oauth["tokenHeaders"],
        "token_url": oauth["tokenUrl"],
    }


def _previous_secret(previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """A rotated-out signing secret in its grace period: its fingerprint and expiry (the value never)."""
    if previous is None:
        return None
    return {"expires_at": previous["expiresAt"], "fingerprint": previous["fingerprint"]}


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sensitive_attributes(target: IntegrationTarget) -> list[list[dict[str, str]]]:
    paths = [path for path in SECRET_ATTRIBUTE_PATHS if "oauth" not in path or target.authentication.oauth is not None]
    return [[{"type": "get_attr", "value": step} for step in path] for path in paths]


def _sorted_targets(targets: Iterable[IntegrationTarget]) -> list[IntegrationTarget]:
    ordered = sorted(targets, key=lambda t: t.name)
    for index, target in enumerate(ordered):
        if target.id is None:
            raise InputError(f"target {target.name!r} has no id; only remote targets can be exported")
        if index and ordered[index - 1].name == target.name:
            raise InputError(f"two remote targets are named {target.name!r}; names must be unique to export")
    return ordered


def render_state(
    targets: Iterable[IntegrationTarget],
    *,
    lineage: str,
    serial: int,
    terraform_version: str = DEFAULT_TERRAFORM_VERSION,
) -> str:
    """The ``terraform.tfstate`` text: deterministic for the same targets, lineage and serial."""
    check_terraform_version(terraform_version)
    ordered = _sorted_targets(targets)
    names = resource_names(ordered)
    outputs: dict[str, Any] = {
        TARGET_IDS_OUTPUT: {"value": {t.name: t.id for t in ordered}, "type": ["map", "string"]},
    }
    for target in ordered:
        outputs[f"{names[target.name]}_id"] = {"value": target.id, "type": "string"}
    resources = [
        {
            "mode": "managed",
            "type": RESOURCE_TYPE,
            "name": names[target.name],
            "provider": PROVIDER_ADDRESS,
            "instances": [
                {
                    "schema_version": 0,
                    "attributes": target_attributes(target),
                    "sensitive_attributes": _sensitive_attributes(target),
                    "private": None,
                }
            ],
        }
        for target in ordered
    ]
    state = {
        "version": STATE_FORMAT_VERSION,
        "terraform_version": terraform_version,
        "serial": serial,
        "lineage": lineage,
        "outputs": dict(sorted(outputs.items())),
        "resources": resources,
        "check_results": None,
    }
    return json.dumps(state, indent=2, ensure_ascii=False) + "\n"


def check_terraform_version(version: str) -> None:
    if not _SEMVER.match(version):
        raise InputError(f"--terraform-version: {version!r} is not a version like 1.5.0")


def _escape_template(value: Any) -> Any:
    """Terraform's JSON syntax reads every string as a template: keep ``${`` and ``%{`` literal."""
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list):
        return [_escape_template(item) for item in value]
    if isinstance(value, dict):
        return {_escape_template(key): _escape_template(item) for key, item in value.items()}
    return value


def render_config(targets: Iterable[IntegrationTarget]) -> str:
    """The ``main.tf.json`` text: provider requirement, one resource and one import block per target."""
    ordered = _sorted_targets(targets)
    names = resource_names(ordered)
    config: dict[str, Any] = {
        "terraform": {"required_providers": {PROVIDER_LOCAL_NAME: {"source": PROVIDER_SOURCE}}},
    }
    if ordered:
        variables: dict[str, Any] = {}
        resources: dict[str, Any] = {}
        for target in ordered:
            name = names[target.name]
            body, secret_variable = _resource_body(target, name)
            resources[name] = body
            if secret_variable is not None:
                variables[secret_variable] = {
                    "type": "string",
                    "sensitive": True,
                    "description": _escape_template(f"{target.authentication.secret_path} of target {target.name!r}"),
                }
        if variables:
            config["variable"] = variables
        config["import"] = [{"to": f"{RESOURCE_TYPE}.{names[t.name]}", "id": _escape_template(t.id)} for t in ordered]
        config["resource"] = {RESOURCE_TYPE: resources}
    outputs: dict[str, Any] = {
        TARGET_IDS_OUTPUT: {
            "value": {_escape_template(t.name): f"${{{RESOURCE_TYPE}.{names[t.name]}.id}}" for t in ordered}
        }
    }
    for target in ordered:
        outputs[f"{names[target.name]}_id"] = {"value": f"${{{RESOURCE_TYPE}.{names[target.name]}.id}}"}
    config["output"] = dict(sorted(outputs.items()))
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def _resource_body(target: IntegrationTarget, name: str) -> tuple[dict[str, Any], str | None]:
    attributes = target_attributes(target)
    auth = attributes["authentication"]
    authentication: dict[str, Any] = {"type": auth["type"]}
    if auth["header_name"] is not None:
        authentication["header_name"] = auth["header_name"]
    secret_variable = None
    if auth["oauth"] is not None:
        oauth = {key: value for key, value in auth["oauth"].items() if key != "client_secret"}
        secret_variable = f"{name}_oauth_client_secret"
        oauth["client_secret"] = f"${{var.{secret_variable}}}"
        authentication["oauth"] = _escape_template(oauth) | {"client_secret": oauth["client_secret"]}
    elif auth["type"] != "none":
        secret_variable = f"{name}_auth_value"
        authentication["value"] = f"${{var.{secret_variable}}}"
    body: dict[str, Any] = {
        "name": _escape_template(attributes["name"]),
        "endpoint": _escape_template(attributes["endpoint"]),
        "authentication": authentication,
        "retry_policy": attributes["retry_policy"],
    }
    if attributes["description"] is not None:
        body["description"] = _escape_template(attributes["description"])
    if attributes["event_filters"]:
        body["event_filters"] = _escape_template(attributes["event_filters"])
    if attributes["event_pattern"] is not None:
        body["event_pattern"] = _escape_template(attributes["event_pattern"])
    for key in ("input", "input_path", "input_transformer", "max_in_flight", "rate_limit_per_second"):
        if attributes[key] is not None:
            body[key] = _escape_template(attributes[key])
    return body, secret_variable


@dataclass(frozen=True, slots=True)
class StateIdentity:
    """The parts of an existing state that an export keeps: its lineage and serial."""

    lineage: str
    serial: int


def parse_state(text: str, *, source: str) -> dict[str, Any]:
    """A state file's JSON, checked to be format version 4; InputError naming ``source`` otherwise."""
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}: not a Terraform state (invalid JSON: {exc.msg})") from exc
    if not isinstance(state, dict):
        raise InputError(f"{source}: not a Terraform state (expected a JSON object)")
    version = state.get("version")
    if version != STATE_FORMAT_VERSION:
        raise InputError(
            f"{source}: version: state format {version!r} is not supported; Terraform and cxeb read version 4"
        )
    lineage, serial = state.get("lineage"), state.get("serial")
    if not isinstance(lineage, str) or not lineage:
        raise InputError(f"{source}: lineage: must be a non-empty string")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise InputError(f"{source}: serial: must be a non-negative integer")
    if not isinstance(state.get("resources", []), list):
        raise InputError(f"{source}: resources: must be a list")
    return state


@dataclass(frozen=True, slots=True)
class RenderedExport:
    """The files an export writes, and whether the state's content changed."""

    state_text: str
    config_text: str
    identity: StateIdentity
    state_changed: bool


def render_export(
    targets: Sequence[IntegrationTarget],
    *,
    existing_state: str | None,
    new_lineage: Callable[[], str],
    terraform_version: str = DEFAULT_TERRAFORM_VERSION,
    source: str = STATE_FILE,
) -> RenderedExport:
    """Both files, keeping an existing state's lineage and raising its serial only if the content changed."""
    config_text = render_config(targets)
    if existing_state is None:
        identity = StateIdentity(lineage=new_lineage(), serial=1)
        text = render_state(targets, lineage=identity.lineage, serial=1, terraform_version=terraform_version)
        return RenderedExport(text, config_text, identity, state_changed=True)
    previous = parse_state(existing_state, source=source)
    identity = StateIdentity(lineage=previous["lineage"], serial=previous["serial"])
    same = render_state(targets, lineage=identity.lineage, serial=identity.serial, terraform_version=terraform_version)
    if same == existing_state:
        return RenderedExport(same, config_text, identity, state_changed=False)
    identity = StateIdentity(lineage=identity.lineage, serial=identity.serial + 1)
    text = render_state(targets, lineage=identity.lineage, serial=identity.serial, terraform_version=terraform_version)
    return RenderedExport(text, config_text, identity, state_changed=True)


def state_resources(state: Mapping[str, Any], *, source: str) -> dict[str, dict[str, Any]]:
    """Target id -> attributes, for every ``cxone_integration_target`` instance in a parsed state."""
    found: dict[str, dict[str, Any]] = {}
    for index, resource in enumerate(state.get("resources", [])):
        if not isinstance(resource, dict) or resource.get("type") != RESOURCE_TYPE:
            continue
        for instance in resource.get("instances", []):
            attributes = instance.get("attributes") if isinstance(instance, dict) else None
            target_id = attributes.get("id") if isinstance(attributes, dict) else None
            if not isinstance(attributes, dict) or not isinstance(target_id, str):
                raise InputError(f"{source}: resources[{index}]: an instance has no attributes.id")
            found[target_id] = attributes
    return found
