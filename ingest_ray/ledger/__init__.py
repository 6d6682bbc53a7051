"""The job ledger: a protocol and its backends (Redis, PostgreSQL); ``open_ledger`` picks one."""

from __future__ import annotations

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
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.ledger.redis import RedisLedger

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
