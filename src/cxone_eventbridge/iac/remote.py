"""Reading the remote side of a plan: every target, and, when a file declares signing secrets, their fingerprints.

The targets routes never return a signing secret. The routes table does (scope ``event:route:read``), so
it is read only when the file declares a ``signingSecret``, its secrets are reduced to fingerprints at once,
and a caller without that scope gets "unknown" for those secrets instead of an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.exceptions import PermissionDeniedError
from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.models import IntegrationTarget


@dataclass(frozen=True, slots=True)
class RemoteTargets:
    """The remote targets, and signing-secret fingerprints by target id when they could be read."""

    targets: list[IntegrationTarget]
    signing_fingerprints: dict[str, str | None] | None
    notes: tuple[str, ...] = ()


async def read_remote(client: CXoneClient, desired: Sequence[IntegrationTarget]) -> RemoteTargets:
    """List the remote targets; read signing-secret fingerprints only if a desired target declares one."""
    targets = await client.targets.list_all()
    if not any(target.signing_secret is not None for target in desired):
        return RemoteTargets(targets=targets, signing_fingerprints=None)
    try:
        table = await client.routes()
    except PermissionDeniedError:
        note = "signing secrets cannot be compared without the event:route:read scope; they show as unknown"
        return RemoteTargets(targets=targets, signing_fingerprints=None, notes=(note,))
    fingerprints: dict[str, str | None] = {}
    for route in table.items:
        if route.id is None:
            continue
        secret = route.signing_secret.get_secret_value() if route.signing_secret is not None else ""
        fingerprints[route.id] = secret_fingerprint(route.id, secret) if secret else None
    return RemoteTargets(targets=targets, signing_fingerprints=fingerprints)
