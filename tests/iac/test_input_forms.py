"""A target's input, inputPath and inputTransformer through targets files, plan, import, export and drift."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.exceptions import TargetsFileError
from cxone_eventbridge.iac.drift import detect_drift
from cxone_eventbridge.iac.importer import target_document
from cxone_eventbridge.iac.plan import Action, compute_plan
from cxone_eventbridge.iac.schema import targets_file_schema
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file
from cxone_eventbridge.iac.terraform import parse_state, render_config, render_state
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]
TRANSFORMER = {
    "inputPathsMap": {"agent": "$.agent.name", "cost": "$.costs[0]"},
    "inputTemplate": '{"who": <agent>, "text": "${not terraform} <agent>", "cost": <cost>}',
}
FILE = """\
- name: Shaped
  endpoint: https://hooks.example.com/shaped
  inputTransformer:
    inputPathsMap:
      agent: $.agent.name
      cost: $.costs[0]
    inputTemplate: '{"who": <agent>, "text": "${not terraform} <agent>", "cost": <cost>}'
- name: Part
  endpoint: https://hooks.example.com/part
  inputPath: $.detail
- name: Fixed
  endpoint: https://hooks.example.com/fixed
  input: '{"ping": true}'
"""


def _load(tmp_path: Path, text: str) -> list[IntegrationTarget]:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE).targets


def test_a_targets_file_carries_the_three_input_forms(tmp_path: Path) -> None:
    """The loader reads input, inputPath and inputTransformer in their wire shape."""
    shaped, part, fixed = _load(tmp_path, FILE)
    assert shaped.to_wire()["inputTransformer"] == TRANSFORMER
    assert part.input_path == "$.detail"
    assert fixed.input == '{"ping": true}'


def test_invalid_input_forms_in_a_file_name_their_line_and_field(tmp_path: Path) -> None:
    """Errors come with the file, line and wire path, all in one run."""
    text = """\
- name: A
  endpoint: https://a.example.com
  inputTransformer:
    inputPathsMap: {x: $.x}
    inputTemplate: '{"a": <y>}'
- name: B
  endpoint: https://b.example.com
  inputPath: detail
"""
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    with pytest.raises(TargetsFileError) as info:
        load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE)
    errors = [str(e) for e in info.value.errors]
    assert any("[0].inputTransformer.inputTemplate" in e and "<y> is not a variable" in e for e in errors), errors
    assert any("[1].inputPath" in e and "must start with $" in e for e in errors), errors


def test_the_schema_describes_the_input_forms() -> None:
    """`cxeb schema` knows the new fields, so editors complete them."""
    schema = targets_file_schema()
    target = schema["$defs"]["IntegrationTarget"]["properties"]
    assert {"input", "inputPath", "inputTransformer"} <= set(target)
    assert set(schema["$defs"]["InputTransformer"]["properties"]) == {"inputPathsMap", "inputTemplate"}


def test_plan_shows_a_changed_template(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """A template changed in the file is an update at inputTransformer.inputTemplate."""
    desired = _load(tmp_path, FILE)[:1]
    before = {**TRANSFORMER, "inputTemplate": '{"who": <agent>}'}
    remote = [remote_target("Shaped", token=None, inputTransformer=before)]
    plan = compute_plan(desired, remote, unresolved=set(), prune=False)
    (item,) = plan.items
    assert item.action is Action.UPDATE
    assert [(c.path, c.before, c.after) for c in item.changes] == [
        ("inputTransformer.inputTemplate", before["inputTemplate"], TRANSFORMER["inputTemplate"])
    ]


def test_import_keeps_the_input_forms(remote_target: RemoteFactory) -> None:
    """`cxeb import` writes the input forms back into the file."""
    document = target_document(remote_target("Shaped", token=None, inputTransformer=TRANSFORMER), None)
    assert document["inputTransformer"] == TRANSFORMER
    assert "input" not in document
    assert target_document(remote_target("Part", token=None, inputPath="$.a"), None)["inputPath"] == "$.a"


def test_terraform_export_and_drift(remote_target: RemoteFactory) -> None:
    """The export carries the transformer (Terraform templates escaped); a changed template is drift."""
    exported = [remote_target("Shaped", token=None, inputTransformer=TRANSFORMER)]
    state = parse_state(render_state(exported, lineage="l", serial=1), source="s")
    attributes: dict[str, Any] = state["resources"][0]["instances"][0]["attributes"]
    assert attributes["input_transformer"] == {
        "input_paths_map": TRANSFORMER["inputPathsMap"],
        "input_template": TRANSFORMER["inputTemplate"],
    }
    config = json.loads(render_config(exported))
    (body,) = config["resource"]["cxone_integration_target"].values()
    assert "$${not terraform}" in body["input_transformer"]["input_template"]
    assert not detect_drift(state, exported, source="s").has_drift
    changed = [remote_target("Shaped", token=None, inputTransformer={**TRANSFORMER, "inputTemplate": "<agent>"})]
    (item,) = detect_drift(state, changed, source="s").items
    assert [c.path for c in item.changes] == ["inputTransformer.inputTemplate"]
    part = [remote_target("Part", token=None, inputPath="$.a")]
    part_state = parse_state(render_state(part, lineage="l", serial=1), source="s")
    assert part_state["resources"][0]["instances"][0]["attributes"]["input_path"] == "$.a"
    assert not detect_drift(part_state, part, source="s").has_drift


def test_drift_in_variable_names_keeps_the_users_keys(remote_target: RemoteFactory) -> None:
    """A changed inputPathsMap is one change with the user's variable names, never camel-cased."""
    exported = [
        remote_target(
            "Shaped", token=None, inputTransformer={"inputPathsMap": {"my_var": "$.a"}, "inputTemplate": "<my_var>"}
        )
    ]
    state = parse_state(render_state(exported, lineage="l", serial=1), source="s")
    changed = [
        remote_target(
            "Shaped", token=None, inputTransformer={"inputPathsMap": {"my_var": "$.b"}, "inputTemplate": "<my_var>"}
        )
    ]
    (item,) = detect_drift(state, changed, source="s").items
    assert [(c.path, c.before, c.after) for c in item.changes] == [
        ("inputTransformer.inputPathsMap", {"my_var": "$.a"}, {"my_var": "$.b"})
    ]
