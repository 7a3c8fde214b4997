"""The wire models: field rules, cross-field rules, camelCase and the tutorial's snake_case, secrets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cxone_eventbridge.models import IntegrationTarget, TargetAuthentication, field_errors
from cxone_eventbridge.signing import generate_signing_secret


def _errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        IntegrationTarget.model_validate(data)
    return {e.field: e.message for e in field_errors(info.value)}


def _target(**overrides: Any) -> dict[str, Any]:
    return {"name": "Queue events", "endpoint": "https://hooks.example.com/cx", **overrides}


def test_defaults_and_camel_case_wire() -> None:
    """A minimal target gets the documented defaults and serializes in camelCase."""
    wire = IntegrationTarget.model_validate(_target()).to_wire()
    assert wire["retryPolicy"] == {"maxRetries": 3, "backoffStrategy": "exponential", "timeoutMs": 5000}
    assert wire["authentication"]["type"] == "none"
    assert wire["eventFilters"] == []


def test_tutorial_payload_with_snake_case_and_nulls_is_accepted() -> None:
    """The original tutorial's to_api_payload shape (snake_case nested keys, nulls) validates."""
    payload = {
        "name": "Production Webhook",
        "type": "webhook",
        "endpoint": "https://webhook.site/test-endpoint",
        "authentication": {"type": "none", "value": None, "header_name": None},
        "retryPolicy": {"max_retries": 3, "backoff_strategy": "exponential", "timeout_ms": 5000},
        "eventFilters": [{"field": "eventType", "operator": "contains", "value": "call.answered"}],
        "description": None,
    }
    target = IntegrationTarget.model_validate(payload)
    assert target.retry_policy.max_retries == 3
    assert target.event_filters[0].value == "call.answered"
    assert IntegrationTarget.model_validate(_target(retryPolicy=None, eventFilters=None)).event_filters == []


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"name": ""}, "name", "at least 1"),
        ({"name": "x" * 101}, "name", "at most 100"),
        ({"endpoint": "http://hooks.example.com"}, "endpoint", "https://"),
        ({"endpoint": "https://user:pw@hooks.example.com"}, "endpoint", "credentials"),
        ({"endpoint": "https:///nohost"}, "endpoint", "host"),
        ({"retryPolicy": {"maxRetries": 11}}, "retryPolicy.maxRetries", "less than or equal to 10"),
        ({"retryPolicy": {"maxRetries": "3"}}, "retryPolicy.maxRetries", "integer"),
        ({"retryPolicy": {"timeoutMs": 999}}, "retryPolicy.timeoutMs", "greater than or equal to 1000"),
        ({"retryPolicy": {"backoffStrategy": "random"}}, "retryPolicy.backoffStrategy", "exponential"),
        ({"authentication": {"type": "bearer"}}, "authentication.value", "required"),
        ({"authentication": {"type": "basic", "value": "nocolon"}}, "authentication.value", "user:password"),
        ({"authentication": {"type": "none", "value": "x"}}, "authentication.value", "must be empty"),
        (
            {"authentication": {"type": "api_key", "value": "k", "headerName": "Authorization"}},
            "authentication.headerName",
            "reserved",
        ),
        (
            {"authentication": {"type": "api_key", "value": "k", "headerName": "Bad Header"}},
            "authentication.headerName",
            "valid HTTP header",
        ),
        (
            {"authentication": {"type": "bearer", "value": "t", "headerName": "X-A"}},
            "authentication.headerName",
            "only",
        ),
        ({"eventFilters": [{"field": "a", "operator": "bogus", "value": "x"}]}, "eventFilters[0].operator", "equals"),
        (
            {"eventFilters": [{"field": "a", "operator": "regex", "value": "("}]},
            "eventFilters[0].value",
            "invalid regex",
        ),
        ({"eventFilters": [{"field": "a", "operator": "gt", "value": "5"}]}, "eventFilters[0].value", "number"),
        (
            {"eventFilters": [{"field": "a", "operator": "gt", "value": float("inf")}]},
            "eventFilters[0].value",
            "finite",
        ),
        ({"eventFilters": [{"field": "a", "operator": "in", "value": []}]}, "eventFilters[0].value", "non-empty list"),
        ({"eventFilters": [{"field": "a", "operator": "exists", "value": "yes"}]}, "eventFilters[0].value", "true or"),
        ({"eventFilters": [{"field": "a..b", "operator": "exists"}]}, "eventFilters[0].field", "empty segment"),
        ({"signingSecret": "whsec_short"}, "signingSecret", "base64"),
        ({"signingSecret": "${NOT_A_REF}"}, "signingSecret", "malformed secret reference"),
        ({"colour": "blue"}, "colour", "not a known field"),
    ],
)
def test_invalid_fields_are_named(overrides: dict[str, Any], field: str, fragment: str) -> None:
    """Each invalid field is reported under its wire-form path with a helpful message."""
    errors = _errors(_target(**overrides))
    assert field in errors, errors
    assert fragment in errors[field]


def test_all_errors_reported_at_once() -> None:
    """Several invalid fields give several errors in one validation."""
    errors = _errors({"name": "", "endpoint": "http://x", "retryPolicy": {"maxRetries": 99}})
    assert {"name", "endpoint", "retryPolicy.maxRetries"} <= set(errors)


def test_secrets_never_in_repr_errors_or_default_wire() -> None:
    """Auth values and signing secrets stay out of repr, error messages and default serialization."""
    secret = generate_signing_secret()
    target = IntegrationTarget.model_validate(
        _target(authentication={"type": "bearer", "value": "tok-SECRET-123"}, signingSecret=secret)
    )
    assert "tok-SECRET-123" not in repr(target)
    assert secret not in repr(target)
    wire = target.to_wire()
    assert wire["authentication"]["value"] is None
    assert wire["signingSecret"] is None
    revealed = target.to_wire(reveal_secrets=True)
    assert revealed["authentication"]["value"] == "tok-SECRET-123"
    assert revealed["signingSecret"] == secret
    errors = _errors(_target(authentication={"type": "basic", "value": "SECRETNOCOLON"}))
    assert all("SECRETNOCOLON" not in message for message in errors.values())


def test_read_back_form_and_references_validate() -> None:
    """A fingerprint stands in for a write-only value; ${env:NAME} references pass content checks."""
    auth = TargetAuthentication.model_validate({"type": "bearer", "value": None, "valueFingerprint": "sha256:ab"})
    assert auth.value is None
    basic = TargetAuthentication.model_validate({"type": "basic", "value": "${env:BASIC_CREDS}"})
    assert basic.value is not None
    assert IntegrationTarget.model_validate(_target(signingSecret="${env:SIGNING}")).signing_secret is not None


def test_api_key_gets_a_default_header() -> None:
    """api_key without headerName uses X-API-Key."""
    auth = TargetAuthentication.model_validate({"type": "api_key", "value": "k"})
    assert auth.header_name == "X-API-Key"


def test_an_integer_beyond_float_range_is_a_finite_filter_value() -> None:
    """Filters count numbers as patterns do (wire.is_finite_number): 10**400 is finite and compared exactly."""
    target = _target(eventFilters=[{"field": "a", "operator": "gt", "value": 10**400}])
    assert IntegrationTarget.model_validate(target).event_filters[0].value == 10**400


def test_a_misspelt_pattern_match_type_gets_did_you_mean() -> None:
    """The model's pattern check proposes the match type meant (`numerc` → `numeric`)."""
    errors = _errors(_target(eventPattern={"metrics": {"wait": [{"numerc": [">", 60]}]}}))
    assert any("did you mean 'numeric'?" in message for message in errors.values()), errors
