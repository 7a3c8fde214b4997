"""Targets-file mistakes a newcomer makes get a pointer: did you mean, duplicates, catch-all and private endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxone_eventbridge.exceptions import TargetsFileError
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file


def _load(tmp_path: Path, text: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a file with ``text``."""
    path = tmp_path / "targets.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        loaded = load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE)
    except TargetsFileError as exc:
        return [str(e) for e in exc.errors], []
    return [], loaded.warnings


def test_a_misspelt_field_name_gets_did_you_mean(tmp_path: Path) -> None:
    """`endpiont` and `retryPolicy.maxRetry` are unknown fields, each with the field it probably meant."""
    errors, _ = _load(
        tmp_path, "name: a\nendpoint: https://a.example.com/x\nendpiont: x\nretryPolicy:\n  maxRetry: 2\n"
    )
    assert any("endpiont: is not a known field; did you mean 'endpoint'?" in e for e in errors), errors
    assert any("retryPolicy.maxRetry: is not a known field; did you mean 'maxRetries'?" in e for e in errors), errors


def test_a_misspelt_filter_operator_gets_did_you_mean(tmp_path: Path) -> None:
    """`equal` as an operator is refused with "did you mean 'equals'"."""
    text = "name: a\nendpoint: https://a.example.com/x\neventFilters:\n  - field: eventType\n    operator: equal\n    value: x\n"
    errors, _ = _load(tmp_path, text)
    assert any("eventFilters[0].operator" in e and "did you mean 'equals'?" in e for e in errors), errors


def test_duplicate_names_are_reported_with_the_other_errors(tmp_path: Path) -> None:
    """A duplicate name is listed beside an invalid field of the same item, not hidden behind it."""
    text = """\
- name: same
  endpoint: https://a.example.com/x
- name: same
  endpoint: https://b.example.com/x
  retryPolicy:
    maxRetries: 99
"""
    errors, _ = _load(tmp_path, text)
    assert any("[1].name: duplicate target name 'same' (also item [0])" in e for e in errors), errors
    assert any("[1].retryPolicy.maxRetries" in e for e in errors), errors


def test_a_target_without_pattern_or_filters_draws_a_warning(tmp_path: Path) -> None:
    """No eventPattern and no eventFilters: valid, with a warning that the target receives every event."""
    errors, warnings = _load(tmp_path, "name: everything\nendpoint: https://a.example.com/x\n")
    assert errors == []
    assert any("'everything' has neither eventPattern nor eventFilters: it receives every event" in w for w in warnings)


@pytest.mark.parametrize(
    ("endpoint", "flag"),
    [
        ("https://169.254.169.254/latest", "--allow-private 169.254.169.254/32"),
        ("https://10.1.2.3/hook", "--allow-private 10.1.2.3/32"),
        ("https://127.0.0.1:8743/hook", "--allow-private 127.0.0.1/32"),
        ("https://localhost:8743/hook", "--allow-private 127.0.0.1/32"),
    ],
)
def test_an_endpoint_at_a_private_or_metadata_address_is_flagged(tmp_path: Path, endpoint: str, flag: str) -> None:
    """An endpoint the router would refuse is flagged when the file is validated, with the flag that admits it."""
    errors, warnings = _load(tmp_path, f"name: a\nendpoint: {endpoint}\neventPattern:\n  eventType: [x]\n")
    assert errors == []
    assert any(f"endpoint {endpoint} is " in w and flag in w for w in warnings), warnings


def test_a_public_endpoint_is_not_flagged(tmp_path: Path) -> None:
    """A public name or address draws no endpoint warning."""
    _, warnings = _load(tmp_path, "name: a\nendpoint: https://hooks.example.com/x\neventPattern:\n  eventType: [x]\n")
    assert warnings == []


def test_server_set_fields_are_ignored_with_a_note(tmp_path: Path) -> None:
    """`targets get -o json` fields (id, status, createdAt...) are ignored with one warning, not refused."""
    text = (
        '{"id": "tgt_1", "name": "a", "endpoint": "https://a.example.com/x", "status": "active",'
        ' "createdAt": "2026-01-01T00:00:00Z", "eventPattern": {"eventType": ["x"]}}'
    )
    path = tmp_path / "t.json"
    path.write_text(text)
    loaded = load_targets_file(path, environ={}, resolution=SecretResolution.REQUIRED)
    assert loaded.targets[0].id is None
    assert any("id, status, createdAt: set by the server; ignored" in w for w in loaded.warnings), loaded.warnings


def test_a_misspelt_pattern_match_type_gets_did_you_mean(tmp_path: Path) -> None:
    """`prefx` in an eventPattern is refused with "did you mean 'prefix'", like a misspelt operator."""
    text = "name: a\nendpoint: https://a.example.com/x\neventPattern:\n  eventType: [{prefx: call.}]\n"
    errors, _ = _load(tmp_path, text)
    assert any("unrecognized match type 'prefx'; did you mean 'prefix'?" in e for e in errors), errors
