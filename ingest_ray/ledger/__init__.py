"""The job ledger: a protocol and its backends (``redis`` today)."""

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
    TransitionOutcome,
    TransitionRequest,
)
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
    "RedisLedger",
    "TransitionOutcome",
    "TransitionRequest",
]
