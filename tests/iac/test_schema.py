"""The targets file's JSON Schema: generated from the models, one target or a list, no server-set fields."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.iac.schema import targets_file_schema


def test_schema_accepts_a_target_or_a_list_by_alias() -> None:
    """The root is anyOf a target or an array of targets, with camelCase property names."""
    schema = targets_file_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["anyOf"] == [
        {"$ref": "#/$defs/IntegrationTarget"},
        {"items": {"$ref": "#/$defs/IntegrationTarget"}, "type": "array"},
    ]
    target = schema["$defs"]["IntegrationTarget"]
    assert target["required"] == ["name", "endpoint"]
    assert {"retryPolicy", "eventFilters", "eventPattern", "signingSecret"} <= set(target["properties"])
    assert schema["$defs"]["RetryPolicy"]["properties"]["maxRetries"]["maximum"] == 10


def test_schema_leaves_out_what_the_server_sets() -> None:
    """id, status, timestamps and valueFingerprint are refused in a file, so the schema does not offer them."""
    text = json.dumps(targets_file_schema())
    for field in ("createdAt", "updatedAt", "valueFingerprint", '"status"', '"id"'):
        assert field not in text
    assert targets_file_schema()["$defs"]["IntegrationTarget"]["additionalProperties"] is False


def test_cxeb_schema_prints_the_schema_as_plain_json() -> None:
    """`cxeb schema` needs no settings, exits 0 and prints parseable JSON equal to the library's schema."""
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == targets_file_schema()
