"""A target's maxInFlight and rateLimitPerSecond through targets files, the schema, import, export and drift."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.exceptions import TargetsFileError
from cxone_eventbridge.iac.drift import detect_drift
from cxone_eventbridge.iac.importer import target_document
from cxone_eventbridge.iac.schema import targets_file_schema
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file
from cxone_eventbridge.iac.terraform import parse_state, render_config, render_state
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]
FILE = """\
- name: Limited
  endpoint: https://hooks.example.com/limited
  maxInFlight: 4
  rateLimitPerSecond: 50
"""


def _load(tmp_path: Path, text: str) -> list[IntegrationTarget]:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE).targets


def test_a_targets_file_carries_the_delivery_limits(tmp_path: Path) -> None:
    """The loader reads maxInFlight and rateLimitPerSecond; both are optional (no limit)."""
    [limited] = _load(tmp_path, FILE)
    assert (limited.max_in_flight, limited.rate_limit_per_second) == (4, 50.0)
    assert limited.to_wire()["maxInFlight"] == 4


def test_out_of_range_limits_name_their_field(tmp_path: Path) -> None:
    """maxInFlight must be at least 1 and rateLimitPerSecond above 0; the error names the field."""
    with pytest.raises(TargetsFileError, match="maxInFlight"):
        _load(tmp_path, FILE.replace("maxInFlight: 4", "maxInFlight: 0"))
    with pytest.raises(TargetsFileError, match="rateLimitPerSecond"):
        _load(tmp_path, FILE.replace("rateLimitPerSecond: 50", "rateLimitPerSecond: 0"))


def test_the_schema_describes_the_limits() -> None:
    """`cxeb schema` knows the fields, so editors complete them."""
    target = targets_file_schema()["$defs"]["IntegrationTarget"]["properties"]
    assert {"maxInFlight", "rateLimitPerSecond"} <= set(target)


def test_import_export_and_drift_keep_the_limits(remote_target: RemoteFactory) -> None:
    """`cxeb import` writes the limits back; the Terraform export carries them; a changed limit is drift."""
    remote = [remote_target("Limited", token=None, maxInFlight=4, rateLimitPerSecond=50)]
    document = target_document(remote[0], None)
    assert (document["maxInFlight"], document["rateLimitPerSecond"]) == (4, 50)
    assert "maxInFlight" not in target_document(remote_target("Plain", token=None), None)
    state = parse_state(render_state(remote, lineage="l", serial=1), source="s")
    attributes: dict[str, Any] = state["resources"][0]["instances"][0]["attributes"]
    assert (attributes["max_in_flight"], attributes["rate_limit_per_second"]) == (4, 50)
    (body,) = json.loads(render_config(remote))["resource"]["cxone_integration_target"].values()
    assert (body["max_in_flight"], body["rate_limit_per_second"]) == (4, 50)
    assert not detect_drift(state, remote, source="s").has_drift
    changed = [remote_target("Limited", token=None, maxInFlight=8, rateLimitPerSecond=50)]
    (item,) = detect_drift(state, changed, source="s").items
    assert [c.path for c in item.changes] == ["maxInFlight"]
