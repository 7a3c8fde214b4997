"""The PostgreSQL backend of the delivery queue (several routers sharing one database)."""

from cxone_eventbridge.router.queue.postgres.backend import PostgresQueue

__all__ = ["PostgresQueue"]
