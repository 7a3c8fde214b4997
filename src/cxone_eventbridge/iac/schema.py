"""The JSON Schema of a targets file, generated from the wire models, for editors and CI linters.

A targets file holds one target or a list of them, in wire form (camelCase). Fields the server sets
(``id``, ``status``, timestamps, ``valueFingerprint``) are removed: the loader refuses them in a file.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from cxone_eventbridge.iac.targets_file import SERVER_SET_FIELDS
from cxone_eventbridge.models import IntegrationTarget

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://cxone-eventbridge.invalid/schemas/targets-file.json"


def targets_file_schema() -> dict[str, Any]:
    """A JSON Schema (2020-12) accepting one target or a list of targets."""
    adapter: TypeAdapter[IntegrationTarget | list[IntegrationTarget]] = TypeAdapter(
        IntegrationTarget | list[IntegrationTarget]
    )
    schema = adapter.json_schema(by_alias=True, mode="validation")
    for definition in schema.get("$defs", {}).values():
        properties = definition.get("properties")
        if not isinstance(properties, dict):
            continue
        for server_field in SERVER_SET_FIELDS:
            properties.pop(server_field, None)
        if "required" in definition:
            definition["required"] = [name for name in definition["required"] if name in properties]
    reference_note = "A ${env:NAME} reference (recommended) or plain text (warned)."
    target = schema["$defs"]["IntegrationTarget"]["properties"]
    target["signingSecret"]["description"] = f"Standard Webhooks secret (whsec_...). {reference_note}"
    auth = schema["$defs"]["TargetAuthentication"]["properties"]
    auth["value"]["description"] = f"The credential for the endpoint. {reference_note}"
    oauth = schema["$defs"]["OAuthClientCredentials"]["properties"]
    oauth["clientSecret"]["description"] = f"The OAuth client's secret for the token endpoint. {reference_note}"
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "cxone-eventbridge targets file",
        "description": "One integration target (a mapping) or a list of them, in the API's wire form.",
        **schema,
    }
