"""Fixtures for the IaC tests: remote targets as the API returns them (secrets as fingerprints only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]


@pytest.fixture
def remote_target() -> RemoteFactory:
    """Build a target in the API's read form: id, status, timestamps, and a fingerprint instead of a secret."""

    def build(
        name: str, *, target_id: str | None = None, token: str | None = "tok-1", **fields: Any
    ) -> IntegrationTarget:
        target_id = target_id or f"tgt-{name.lower().replace(' ', '-')}"
        authentication: dict[str, Any] = {"type": "none"}
        if token is not None:
            authentication = {"type": "bearer", "valueFingerprint": secret_fingerprint(target_id, token)}
        data: dict[str, Any] = {
            "id": target_id,
            "name": name,
            "endpoint": f"https://hooks.example.com/{name.lower().replace(' ', '-')}",
            "authentication": authentication,
            "status": "active",
            "createdAt": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat(),
            "updatedAt": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat(),
        }
        data.update(fields)
        return IntegrationTarget.model_validate(data)

    return build
