"""The audit log's files: the live file, its rotated predecessors ``<path>.1``, ``<path>.2``, ... and the lock.

Writers append under an exclusive ``fcntl.flock`` on the lock file and rotate by renaming; the verifier
takes the same lock shared while it opens the files, so it reads a consistent set.
"""

from __future__ import annotations

from pathlib import Path


def lock_path(path: Path) -> Path:
    """The lock file that every writer and the verifier of the log at ``path`` take."""
    return path.with_name(path.name + ".lock")


def rotated_files(path: Path) -> list[Path]:
    """``<path>.1``, ``<path>.2``, ... that exist, oldest first."""
    found: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        prefix = path.name + "."
        for candidate in path.parent.iterdir():
            suffix = candidate.name.removeprefix(prefix)
            if candidate.name.startswith(prefix) and suffix.isdigit():
                found.append((int(suffix), candidate))
    return [p for _, p in sorted(found)]


def next_rotated_file(path: Path) -> Path:
    """The name the live file at ``path`` is renamed to when it rotates."""
    existing = rotated_files(path)
    number = int(existing[-1].name.rsplit(".", 1)[1]) + 1 if existing else 1
    return path.with_name(f"{path.name}.{number}")
