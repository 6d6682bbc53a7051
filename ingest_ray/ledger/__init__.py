"""The job ledger: a protocol and its backends (Redis, PostgreSQL); ``open_ledger`` picks one.

The protocol and its records import eagerly; the backends (redis-py, psycopg) and
``open_ledger`` import when first named (``ingest_ray.lazy``), so a process that only passes
records around, such as a stage actor, does not load either driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_ray.lazy import lazy_exports
from ingest_ray.ledger.base import (
    CreateOutcome,
    Job,
    JobError,
    JobEvent,
    JobFilter,
    Ledger,
    NewJob,
    OutboxEntry,
    OutboxMessage,
    Page,
    QueuedGroup,
    TransitionOutcome,
    TransitionRequest,
)

if TYPE_CHECKING:
    from ingest_ray.ledger.factory import open_ledger
    from ingest_ray.ledger.postgres import PostgresLedger
    from ingest_ray.ledger.redis import RedisLedger

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"open_ledger": "factory", "PostgresLedger": "postgres", "RedisLedger": "redis"},
)

__all__ = [
    "CreateOutcome",
    "Job",
    "JobError",
    "JobEvent",
    "JobFilter",
    "Ledger",
    "NewJob",
    "OutboxEntry",
    "OutboxMessage",
    "Page",
    "PostgresLedger",
    "QueuedGroup",
    "RedisLedger",
    "TransitionOutcome",
    "TransitionRequest",
    "open_ledger",
]
