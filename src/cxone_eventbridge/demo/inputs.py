"""Reading the demo's inputs: the example targets (pointed at this run's receivers) and the example events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cxone_eventbridge.exceptions import FieldError, InputError
from cxone_eventbridge.iac.targets_file import LoadedTargets, SecretResolution, load_targets_file
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.router.queue import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY


def load_demo_targets(path: Path, *, secrets: Mapping[str, str], ports: Mapping[int, int]) -> LoadedTargets:
    """The targets file with its ``${env:...}`` secrets taken from ``secrets`` and endpoint ports remapped.

    An endpoint on a port of ``ports`` (the file's default receiver ports) is moved to the mapped port, so
    the file keeps naming stable ports while the demo listens on ephemeral ones.
    """
    # The demo's router and sandbox admit its loopback receivers: no warning about their addresses.
    loaded = load_targets_file(path, environ=secrets, resolution=SecretResolution.REQUIRED, advice=False)
    targets = [_with_port(target, ports) for target in loaded.targets]
    return LoadedTargets(path=loaded.path, targets=targets, warnings=loaded.warnings, unresolved=loaded.unresolved)


def _with_port(target: IntegrationTarget, ports: Mapping[int, int]) -> IntegrationTarget:
    parts = urlsplit(target.endpoint)
    port, hostname = parts.port, parts.hostname
    if port is None or port not in ports or hostname is None:
        return target
    host = f"[{hostname}]" if ":" in hostname else hostname
    endpoint = parts._replace(netloc=f"{host}:{ports[port]}").geturl()
    return target.model_copy(update={"endpoint": endpoint})


def read_events(path: Path, *, limit: int | None = None) -> dict[int, list[dict[str, Any]]]:
    """The first ``limit`` events of a JSON-lines file, grouped by their ``priority`` field (default 5).

    Input errors name the line; all of them are reported at once.
    """
    groups: dict[int, list[dict[str, Any]]] = {}
    errors: list[FieldError] = []
    count = 0
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the events file {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and count >= limit:
                break
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as exc:
                errors.append(FieldError(f"{path}:{number}", f"is not JSON ({exc})"))
                continue
            if not isinstance(event, dict):
                errors.append(FieldError(f"{path}:{number}", "must be a JSON object"))
                continue
            priority = event.get("priority", DEFAULT_PRIORITY)
            if (
                isinstance(priority, bool)
                or not isinstance(priority, int)
                or not MIN_PRIORITY <= priority <= MAX_PRIORITY
            ):
                errors.append(
                    FieldError(
                        f"{path}:{number}: priority", f"must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}"
                    )
                )
                continue
            groups.setdefault(priority, []).append(event)
            count += 1
    if errors:
        raise InputError(f"{len(errors)} line(s) of {path} are invalid", errors)
    if not count:
        raise InputError(f"the events file {path} has no events")
    return dict(sorted(groups.items()))
