"""Import: remote targets written as a targets file that loads, orders deterministically and plans as unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cxone_eventbridge.iac.importer import FileFormat, render_targets_file, secret_variable_names
from cxone_eventbridge.iac.plan import compute_plan
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]


@pytest.fixture
def remote(remote_target: RemoteFactory) -> list[IntegrationTarget]:
    """Remote targets of every auth type, with filters, a description and a custom retry policy."""
    return [
        remote_target("Zulu feed", token="z-token", description="the last one"),
        remote_target(
            "Alpha",
            token=None,
            authentication={"type": "api_key", "headerName": "X-Key", "valueFingerprint": "sha256:0011223344556677"},
            retryPolicy={"maxRetries": 6, "backoffStrategy": "linear", "timeoutMs": 7000},
            eventFilters=[{"field": "type", "operator": "in", "value": ["a", "b"]}],
        ),
        remote_target("Plain", token=None),
    ]


@pytest.mark.parametrize("file_format", list(FileFormat))
def test_imported_file_plans_as_unchanged(
    remote: list[IntegrationTarget], tmp_path: Path, file_format: FileFormat
) -> None:
    """Loading the imported file (variables unset) and planning against the same remote shows no changes."""
    imported = render_targets_file(remote, file_format=file_format)
    path = tmp_path / f"targets.{file_format.value}"
    path.write_text(imported.text)
    loaded = load_targets_file(path, environ={}, resolution=SecretResolution.AVAILABLE, forbid_plaintext_secrets=True)
    assert [t.name for t in loaded.targets] == ["Alpha", "Plain", "Zulu feed"]
    plan = compute_plan(loaded.targets, remote, unresolved=loaded.unresolved)
    assert not plan.has_changes
    assert loaded.unresolved == {"Alpha": ["authentication.value"], "Zulu feed": ["authentication.value"]}


def test_import_is_deterministic_and_names_variables(remote: list[IntegrationTarget]) -> None:
    """Any input order gives the same text; secrets become CXEB_<NAME>_AUTH_VALUE references."""
    first = render_targets_file(remote, file_format=FileFormat.YAML)
    second = render_targets_file(list(reversed(remote)), file_format=FileFormat.YAML)
    assert first.text == second.text
    assert first.variables == {"Alpha": "CXEB_ALPHA_AUTH_VALUE", "Zulu feed": "CXEB_ZULU_FEED_AUTH_VALUE"}
    assert "${env:CXEB_ZULU_FEED_AUTH_VALUE}" in first.text
    assert "valueFingerprint" not in first.text
    assert "tgt-" not in first.text  # no server-set ids


def test_variable_names_are_unique() -> None:
    """Names that fold to the same variable get numeric suffixes, in name order."""
    assert secret_variable_names(["a-b", "a b", "ä"]) == {
        "a b": "CXEB_A_B_AUTH_VALUE",
        "a-b": "CXEB_A_B_2_AUTH_VALUE",
        "ä": "CXEB_TARGET_AUTH_VALUE",
    }
