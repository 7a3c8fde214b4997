"""One queue, one owner: a router holds an exclusive lock beside its queue file for as long as it runs.

A second router started on the same queue file would lease the first one's work and deliver it twice
over; instead it refuses to start, naming the process that holds the queue. The lock is an advisory
``flock`` on ``<queue>.owner``, which the kernel releases when the holder exits, however it exits (a
SIGKILL leaves no stale lock); the file keeps the holder's description for the next one to read.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cxone_eventbridge.exceptions import QueueInUseError


class QueueOwnerLock:
    """``with QueueOwnerLock(queue_path):`` — held while the block runs; QueueInUseError if another holds it."""

    def __init__(self, queue_path: Path) -> None:
        self.queue_path = queue_path
        self.path = queue_path.with_name(queue_path.name + ".owner")
        self._fd: int | None = None

    def __enter__(self) -> QueueOwnerLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1024).decode("utf-8", errors="replace").strip() or "another process"
            os.close(fd)
            raise QueueInUseError(
                f"the queue {self.queue_path} is in use by another router ({holder}); stop that one, "
                "or give this one a queue of its own with --db"
            ) from None
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {since}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
