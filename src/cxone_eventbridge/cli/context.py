"""What every command that talks to the control plane shares: settings, the client, targets files.

- ``require_api_settings()`` reads ``CXONE_*`` once and exits 2 with a hint when the API is not configured.
- ``api_client(settings, audit_log=...)`` opens a ``CXoneClient`` (an async context manager) whose changes
  are written to the audit log when one is given. Call it inside the coroutine passed to ``runner.run``,
  so configuration errors become one message and exit code 2, never a traceback.
- ``load_targets(paths, resolution=...)`` reads targets files with the one loader, prints its warnings,
  and raises one ``TargetsFileError`` listing every problem of every file.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.cli import render
from cxone_eventbridge.cli.profile_choice import chosen, read_cli_settings, source_of
from cxone_eventbridge.config import Settings
from cxone_eventbridge.defaults import DEFAULT_SANDBOX_PORT
from cxone_eventbridge.exceptions import APIConnectionError, APITimeoutError, ConfigurationError, TargetsFileError
from cxone_eventbridge.iac.targets_file import LoadedTargets, SecretResolution, load_targets_file
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import ObserverBus

NO_BASE_URL_MESSAGE = (
    "CXONE_BASE_URL is not set; start the sandbox with `cxeb sandbox serve` and export "
    f"CXONE_BASE_URL=http://127.0.0.1:{DEFAULT_SANDBOX_PORT}, CXONE_CLIENT_ID and CXONE_CLIENT_SECRET as it "
    "prints them (or point CXONE_BASE_URL at your tenant's API, or choose a profile with --profile NAME)"
)


def require_api_settings() -> Settings:
    """``Settings`` from the environment and --profile; exit 2 naming the variable when the API is not configured."""
    try:
        settings = read_cli_settings(Settings)
    except ConfigurationError as exc:
        render.fail(str(exc), render.EXIT_INVALID_INPUT)
    if not settings.base_url and not settings.discovery_url:
        if (profile := chosen()) is not None:
            render.fail(
                f"profile {profile} sets no base-url (nor discovery-url), and CXONE_BASE_URL is not set",
                render.EXIT_INVALID_INPUT,
            )
        render.fail(NO_BASE_URL_MESSAGE, render.EXIT_INVALID_INPUT)
    return settings


@asynccontextmanager
async def api_client(settings: Settings, *, audit_log: Path | None = None) -> AsyncIterator[CXoneClient]:
    """An open client; every change it makes is appended to ``audit_log`` when one is given."""
    bus = ObserverBus()
    audit = None
    if audit_log is not None:
        from cxone_eventbridge.observe.audit import AuditLog

        audit = AuditLog(audit_log)
        bus.subscribe(audit.observe)
    try:
        async with CXoneClient.from_settings(settings, bus=bus) as client:
            yield client
    except APIConnectionError as exc:
        raise with_connection_hint(exc, settings) from exc.__cause__
    finally:
        if audit is not None:
            audit.close()


def with_connection_hint(exc: APIConnectionError, settings: Settings) -> APIConnectionError:
    """``exc`` with what to check next: whether the sandbox is running when the API is on this machine."""
    if isinstance(exc, APITimeoutError) or not settings.base_url:
        return exc
    url = urlsplit(settings.base_url)
    source = source_of("CXONE_BASE_URL")
    if url.hostname in {"127.0.0.1", "localhost", "::1"}:
        port = url.port or (443 if url.scheme == "https" else 80)
        hint = (
            f"nothing answered at {settings.base_url} ({source}): is the sandbox running? "
            f"`cxeb sandbox serve --port {port}` listens there"
        )
    else:
        hint = f"check {source} ({settings.base_url}), the network and HTTPS_PROXY"
    return type(exc)(f"{exc.message}\nhint: {hint}")


def load_targets(
    paths: Sequence[Path],
    *,
    resolution: SecretResolution,
    forbid_plaintext_secrets: bool = False,
    advice: bool = True,
    environ: Mapping[str, str] | None = None,
    keep_ids: bool = False,
) -> list[LoadedTargets]:
    """Every file's targets, warnings printed; one TargetsFileError with all files' problems if any fail."""
    env = os.environ if environ is None else environ
    loaded: list[LoadedTargets] = []
    failures: list[TargetsFileError] = []
    for path in paths:
        try:
            result = load_targets_file(
                path,
                environ=env,
                resolution=resolution,
                forbid_plaintext_secrets=forbid_plaintext_secrets,
                advice=advice,
                keep_ids=keep_ids,
            )
        except TargetsFileError as exc:
            failures.append(exc)
            continue
        for warning in result.warnings:
            render.warn(warning)
        loaded.append(result)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise TargetsFileError("\n".join(str(failure) for failure in failures))
    return loaded


def all_targets(loaded: Sequence[LoadedTargets]) -> list[IntegrationTarget]:
    """The targets of several loaded files, in file order."""
    return [target for result in loaded for target in result.targets]
