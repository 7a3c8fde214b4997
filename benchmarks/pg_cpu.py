"""The PostgreSQL server's CPU, read from /proc: the backends serving one queue, and the server's own
background processes.

A queue's connections carry ``application_name = cxeb-router:<schema>`` (``PostgresQueue``), so the
backends of one benchmark's queue are found in ``pg_stat_activity`` even on a server other sessions use.
Their CPU is what the benchmark cost the server. The WAL writer, checkpointer, background writer and
autovacuum work for every database on the server; they are reported apart (``aux``), as an upper bound.

Read the backends' CPU while their connections are still open: a backend's counters go with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg

_TICK = os.sysconf("SC_CLK_TCK")
_AUX = ("walwriter", "checkpointer", "background writer", "autovacuum")


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _postgres_processes() -> dict[int, str]:
    """pid -> command line of every process of a PostgreSQL server on this machine."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if not Path(f"/proc/{entry}/comm").read_text().startswith("postgres"):
                continue
            found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


@dataclass
class ServerCpu:
    """CPU seconds of the server's processes since ``start()``: ``backends`` of one queue, and ``aux``."""

    started: dict[int, float]
    aux_pids: list[int]

    @classmethod
    def start(cls) -> ServerCpu:
        processes = _postgres_processes()
        started = {pid: cpu for pid in processes if (cpu := _cpu_s(pid)) is not None}
        aux = [pid for pid, cmd in processes.items() if any(name in cmd for name in _AUX)]
        return cls(started, aux)

    async def backends_s(self, dsn: str, application_name: str) -> float:
        """CPU used since start by the backends now serving ``application_name`` (new ones from zero)."""
        conn = await asyncpg.connect(dsn)
        try:
            pids = [
                r[0]
                for r in await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
                )
            ]
        finally:
            await conn.close()
        return sum(max(0.0, (_cpu_s(pid) or 0.0) - self.started.get(pid, 0.0)) for pid in pids)

    def aux_s(self) -> float:
        """CPU used since start by the server's background processes (shared with all its other work)."""
        return sum(max(0.0, (_cpu_s(pid) or 0.0) - self.started.get(pid, 0.0)) for pid in self.aux_pids)
