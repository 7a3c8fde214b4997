"""Write a Terraform export into a directory: ``terraform.tfstate`` and ``main.tf.json``, nothing else.

A file is rewritten only when its content changes, through a temporary file in the same directory that
replaces it atomically (so a crash never leaves half a state, and no backup or temporary file remains).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cxone_eventbridge.defaults import DEFAULT_TERRAFORM_VERSION
from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.iac.terraform import (
    CONFIG_FILE,
    STATE_FILE,
    StateIdentity,
    render_export,
)
from cxone_eventbridge.models import IntegrationTarget


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Where the files are and what changed."""

    state_path: Path
    config_path: Path
    identity: StateIdentity
    state_written: bool
    config_written: bool
    targets: int


def export_terraform(
    out_dir: str | Path,
    targets: Sequence[IntegrationTarget],
    *,
    terraform_version: str = DEFAULT_TERRAFORM_VERSION,
    new_lineage: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> ExportResult:
    """Render the targets into ``out_dir``, keeping the lineage of a state already there."""
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"--out: {directory} exists and is not a directory")
    state_path, config_path = directory / STATE_FILE, directory / CONFIG_FILE
    existing_state = _read(state_path)
    rendered = render_export(
        targets,
        existing_state=existing_state,
        new_lineage=new_lineage,
        terraform_version=terraform_version,
        source=str(state_path),
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out: cannot create {directory}: {exc.strerror or exc}") from exc
    state_written = rendered.state_changed and _write_if_changed(state_path, rendered.state_text, existing_state)
    config_written = _write_if_changed(config_path, rendered.config_text, _read(config_path))
    return ExportResult(state_path, config_path, rendered.identity, state_written, config_written, len(targets))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _write_if_changed(path: Path, text: str, current: str | None) -> bool:
    if current == text:
        return False
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600 if path.name == STATE_FILE else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
