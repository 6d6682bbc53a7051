"""Steering jobs from outside the runtime: cancel, retry and dead-letter replay.

Every command is first made true in the ledger (a compare-and-set transition, so it is safe from
any process) and then announced to the Dispatcher through a Redis list it polls (the inbox): a
cancelled waiting job is dropped at once, a running one at its next stage boundary (its next
ledger write is refused); a retried job is queued again at the stage where it failed, as a new
attempt of the same job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, cast

import redis

from ingest_ray.errors import IllegalTransitionError, StaleTransitionError
from ingest_ray.ledger.base import Job, Ledger, TransitionRequest
from ingest_ray.states import JobStatus, TransitionReason

Command = Literal["cancel", "requeue"]


class ControlInbox:
    """The Redis list through which commands reach the Dispatcher."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._r = client
        self.key = key

    def push(self, op: Command, job_id: str, **extra: str) -> None:
        """Announce a command."""
        self._r.rpush(self.key, json.dumps({"op": op, "job_id": job_id, **extra}))

    def pop(self, count: int = 500) -> list[str]:
        """Take up to ``count`` commands, oldest first."""
        return cast("list[str]", self._r.lpop(self.key, count) or [])


@dataclass(frozen=True, slots=True)
class ControlResult:
    """What a command did: ``changed`` is False when the job already was in the wanted state."""

    job: Job
    changed: bool


class JobControl:
    """Cancel and retry jobs; usable from the CLI, the HTTP API or tests."""

    def __init__(self, ledger: Ledger, inbox: ControlInbox) -> None:
        self._ledger = ledger
        self._inbox = inbox

    def cancel(self, job_id: str, *, tenant_id: str | None = None) -> ControlResult:
        """Cancel a queued or processing job. Idempotent; a finished job raises
        :class:`IllegalTransitionError` (the API answers 409)."""
        for _ in range(3):  # the job may move between our read and our write
            job = self._ledger.get(job_id, tenant_id=tenant_id)
            if job.status is JobStatus.CANCELLED:
                return ControlResult(job, changed=False)
            if job.status.is_terminal:
                raise IllegalTransitionError(f"job {job_id} is already {job.status.value}")
            try:
                self._ledger.transition(TransitionRequest(job_id, job.status, JobStatus.CANCELLED))
            except StaleTransitionError:
                continue
            self._inbox.push("cancel", job_id, pipeline=job.pipeline)
            return ControlResult(self._ledger.get(job_id), changed=True)
        raise StaleTransitionError(f"job {job_id} kept changing; try again", job_id=job_id)

    def retry(self, job_id: str, *, tenant_id: str | None = None) -> ControlResult:
        """Queue a failed job again where it failed (same job, next attempt). Idempotent for a
        job that is already queued or running; other states raise IllegalTransitionError."""
        job = self._ledger.get(job_id, tenant_id=tenant_id)
        if job.status in (JobStatus.QUEUED, JobStatus.PROCESSING):
            return ControlResult(job, changed=False)
        if job.status is not JobStatus.FAILED:
            raise IllegalTransitionError(
                f"only failed jobs can be retried; {job_id} is {job.status.value}"
            )
        self._ledger.transition(
            TransitionRequest(
                job_id, JobStatus.FAILED, JobStatus.QUEUED, reason=TransitionReason.RETRY
            )
        )
        self._inbox.push("requeue", job_id)
        return ControlResult(self._ledger.get(job_id), changed=True)
