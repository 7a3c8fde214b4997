"""The embedded SQLite backend of the delivery queue."""

from cxone_eventbridge.router.queue.sqlite.backend import SQLiteQueue, Synchronous

__all__ = ["SQLiteQueue", "Synchronous"]
