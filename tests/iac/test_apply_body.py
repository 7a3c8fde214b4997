"""Apply's pure parts: the PATCH body of an update and the up-front check that needed secrets are known."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.iac.apply import check_secrets_available, patch_body
from cxone_eventbridge.iac.plan import Action, Plan, compute_plan
from cxone_eventbridge.iac.targets_file import LoadedTargets, SecretResolution, load_targets_file
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]


def _load(tmp_path: Path, text: str, environ: dict[str, str]) -> LoadedTargets:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_targets_file(path, environ=environ, resolution=SecretResolution.AVAILABLE)


def _plan(loaded: LoadedTargets, remote: list[IntegrationTarget]) -> Plan:
    return compute_plan(loaded.targets, remote, unresolved=loaded.unresolved)


def test_patch_sends_only_changed_fields_with_retry_policy_merged(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """Only changed top-level fields are sent; retryPolicy keeps the remote settings the file does not set."""
    remote = remote_target(
        "Orders", token="t", retryPolicy={"maxRetries": 2, "backoffStrategy": "fixed", "timeoutMs": 9000}
    )
    text = "name: Orders\nendpoint: https://hooks.example.com/v2\nretryPolicy:\n  maxRetries: 6\n"
    (item,) = _plan(_load(tmp_path, text, {}), [remote]).items
    assert patch_body(item) == {
        "endpoint": "https://hooks.example.com/v2",
        "retryPolicy": {"maxRetries": 6, "backoffStrategy": "fixed", "timeoutMs": 9000},
    }


def test_patch_of_a_rotated_secret_carries_the_new_value(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """A changed authentication value is sent (the request needs it) with its type."""
    remote = remote_target("Orders", token="old")
    text = (
        "name: Orders\nendpoint: https://hooks.example.com/orders\nauthentication:\n  type: bearer\n  value: ${env:T}\n"
    )
    (item,) = _plan(_load(tmp_path, text, {"T": "new"}), [remote]).items
    assert item.action is Action.UPDATE
    assert patch_body(item) == {"authentication": {"type": "bearer", "value": "new"}}


def test_a_new_auth_type_with_an_unset_variable_is_refused_before_any_request(
    tmp_path: Path, remote_target: RemoteFactory
) -> None:
    """Changing the auth type needs the value; an unset variable is an input error naming target and field."""
    remote = remote_target("Orders", token=None)
    text = "name: Orders\nendpoint: https://hooks.example.com/orders\nauthentication:\n  type: bearer\n  value: ${env:UNSET_T}\n"
    loaded = _load(tmp_path, text, {})
    plan = _plan(loaded, [remote])
    with pytest.raises(InputError) as info:
        check_secrets_available(plan, loaded.unresolved)
    assert "Orders: authentication.value" in str(info.value)


def test_a_create_with_an_unset_variable_is_refused(tmp_path: Path) -> None:
    """A create must send its secret: an unset variable is an input error."""
    text = "name: New\nendpoint: https://hooks.example.com/new\nsigningSecret: ${env:UNSET_SIGNING}\n"
    loaded = _load(tmp_path, text, {})
    with pytest.raises(InputError, match="New: signingSecret"):
        check_secrets_available(_plan(loaded, []), loaded.unresolved)


def test_an_unknown_secret_that_is_not_sent_does_not_block(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """An update that does not touch authentication goes ahead with the variable unset."""
    remote = remote_target("Orders", token="t")
    text = (
        "name: Orders\nendpoint: https://hooks.example.com/v2\n"
        "authentication:\n  type: bearer\n  value: ${env:UNSET_T}\n"
    )
    loaded = _load(tmp_path, text, {})
    plan = _plan(loaded, [remote])
    check_secrets_available(plan, loaded.unresolved)
    assert patch_body(plan.items[0]) == {"endpoint": "https://hooks.example.com/v2"}
