"""The targets file loader: YAML and JSON, one or many, every error with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxone_eventbridge.exceptions import TargetsFileError
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file

VALID = """\
- name: Queue events
  endpoint: https://hooks.example.com/queue
  authentication:
    type: bearer
    value: ${env:QUEUE_TOKEN}
- name: Agent events
  endpoint: https://hooks.example.com/agents
"""


def _write(tmp_path: Path, text: str, name: str = "targets.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_a_list_and_resolves_required_references(tmp_path: Path) -> None:
    """A list loads in order and REQUIRED resolution substitutes the variable."""
    loaded = load_targets_file(
        _write(tmp_path, VALID), environ={"QUEUE_TOKEN": "tok"}, resolution=SecretResolution.REQUIRED
    )
    assert [t.name for t in loaded.targets] == ["Queue events", "Agent events"]
    value = loaded.targets[0].authentication.value
    assert value is not None
    assert value.get_secret_value() == "tok"


def test_single_mapping_in_json(tmp_path: Path) -> None:
    """A JSON file holding one target (a mapping) loads as one target."""
    path = _write(tmp_path, '{"name": "One", "endpoint": "https://a.example.com"}', "t.json")
    assert [t.name for t in load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE).targets] == ["One"]


def test_offline_keeps_references_and_warns_on_unset(tmp_path: Path) -> None:
    """Offline validation keeps the reference and warns that the variable is unset."""
    loaded = load_targets_file(_write(tmp_path, VALID), environ={}, resolution=SecretResolution.OFFLINE)
    assert any("QUEUE_TOKEN is not set" in w for w in loaded.warnings)
    assert loaded.unresolved == {"Queue events": ["authentication.value"]}


def test_required_unset_variable_is_an_error_naming_it(tmp_path: Path) -> None:
    """Commands that send fail on an unset variable, naming it and the field."""
    with pytest.raises(TargetsFileError) as info:
        load_targets_file(_write(tmp_path, VALID), environ={}, resolution=SecretResolution.REQUIRED)
    assert "QUEUE_TOKEN" in str(info.value)
    assert "[0].authentication.value" in str(info.value)


def test_plaintext_secret_warns_or_fails(tmp_path: Path) -> None:
    """Plain-text secrets draw a warning naming file and field, or an error when forbidden."""
    text = "name: A\nendpoint: https://a.example.com\nauthentication: {type: bearer, value: hunter2}\n"
    path = _write(tmp_path, text)
    loaded = load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE)
    assert any(str(path) in w and "authentication.value" in w for w in loaded.warnings)
    assert all("hunter2" not in w for w in loaded.warnings)
    with pytest.raises(TargetsFileError) as info:
        load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE, forbid_plaintext_secrets=True)
    assert "hunter2" not in str(info.value)


def test_every_error_has_file_line_and_field(tmp_path: Path) -> None:
    """All errors of the file come in one run, each with its line number and wire path."""
    text = """\
- name: A
  endpoint: http://a.example.com
  retryPolicy:
    maxRetries: 12
- name: B
  endpoint: https://b.example.com
  id: abc
"""
    path = _write(tmp_path, text)
    with pytest.raises(TargetsFileError) as info:
        load_targets_file(path, environ={}, resolution=SecretResolution.OFFLINE)
    fields = [str(e) for e in info.value.errors]
    assert any(f.startswith(f"{path}:2: [0].endpoint") for f in fields), fields
    assert any(f.startswith(f"{path}:4: [0].retryPolicy.maxRetries") for f in fields), fields
    assert not any("[1].id" in f for f in fields), fields  # set by the server: ignored with a warning


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("42", "a mapping"),
        ("- 1\n", "must be a mapping"),
        ("name: [unclosed\n", "invalid YAML"),
        ("name: A\nname: B\nendpoint: https://a.example.com\n", "duplicate key"),
        (
            "- {name: A, endpoint: 'https://a.example.com'}\n- {name: A, endpoint: 'https://b.example.com'}\n",
            "duplicate",
        ),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, fragment: str) -> None:
    """Malformed or ambiguous files fail with a clear message, never a traceback."""
    with pytest.raises(TargetsFileError, match=fragment) as info:
        load_targets_file(_write(tmp_path, text), environ={}, resolution=SecretResolution.OFFLINE)
    assert str(info.value)


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    """A missing file and invalid JSON are input errors naming the file (and line)."""
    with pytest.raises(TargetsFileError, match="cannot read"):
        load_targets_file(tmp_path / "absent.yaml", environ={}, resolution=SecretResolution.OFFLINE)
    with pytest.raises(TargetsFileError, match=r"t\.json:2: invalid JSON"):
        load_targets_file(
            _write(tmp_path, '{"name": "A",\n}', "t.json"), environ={}, resolution=SecretResolution.OFFLINE
        )
