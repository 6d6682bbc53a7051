"""Steering jobs from outside the runtime: cancel, retry and dead-letter replay.

Every command is first made true in the ledger (a compare-and-set transition, so it is safe from
any process) and then announced to the Dispatcher through its inbox, a Redis stream read by the
consumer group ``dispatcher``. An entry is acknowledged only once the Dispatcher has acted on it
(for a cancel: the running stage was told to stop and the job's side effects were taken back),
so a Dispatcher that restarts meanwhile reads it again. Commands are typed values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ingest_ray.config import Settings
from ingest_ray.errors import IllegalTransitionError, StaleTransitionError
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.base import Job, Ledger, TransitionRequest
from ingest_ray.states import JobStatus, TransitionReason

if TYPE_CHECKING:
    import redis

INBOX_GROUP = "dispatcher"


@dataclass(frozen=True)
class CancelJob:
    """The job was cancelled in the ledger: stop its stage, drop it, take back its effects."""

    op: ClassVar[str] = "cancel"
    job_id: str
    pipeline: str = ""


@dataclass(frozen=True)
class RequeueJob:
    """The job was queued again (retry, replay): pick it up from the ledger."""

    op: ClassVar[str] = "requeue"
    job_id: str


Command = CancelJob | RequeueJob
_COMMANDS: dict[str, type[CancelJob] | type[RequeueJob]] = {
    "cancel": CancelJob,
    "requeue": RequeueJob,
}


def encode_command(command: Command) -> str:
    """The wire form of a command (JSON with an ``op`` discriminator)."""
    fields: dict[str, Any] = {"op": command.op, "job_id": command.job_id}
    if isinstance(command, CancelJob):
        fields["pipeline"] = command.pipeline
    return json.dumps(fields)


def decode_command(raw: str) -> Command:
    """Parse a command, raising ``ValueError`` for anything that is not one."""
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("op") not in _COMMANDS:
        raise ValueError(f"not a control command: {raw[:200]!r}")
    cls = _COMMANDS[data.pop("op")]
    return cls(**data)


@dataclass(frozen=True)
class InboxEntry:
    """One command read from the inbox; ``command`` is None for an unreadable entry."""

    entry_id: str
    command: Command | None


class ControlInbox:
    """The Redis stream through which commands reach one runtime's Dispatcher."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, runtime: str) -> None:
        self._r = client
        self.key = keys.inbox(runtime)
        self._group_ready = False

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> ControlInbox:
        """The inbox of the runtime the settings name."""
        return cls(client, RedisKeys(settings.redis_prefix), settings.runtime_name)

    def push(self, command: Command) -> None:
        """Announce a command."""
        self._r.xadd(self.key, {"c": encode_command(command)})

    def read(self, consumer: str, count: int = 500, *, pending: bool = True) -> list[InboxEntry]:
        """New commands; with ``pending``, this consumer's unacknowledged ones first (after a
        restart, or to act again on one that could not be finished)."""
        self._ensure_group()
        out: dict[str, InboxEntry] = {}
        for start in ("0", ">") if pending else (">",):
            reply: Any = self._r.xreadgroup(INBOX_GROUP, consumer, {self.key: start}, count=count)
            for entry_id, fields in reply[0][1] if reply else []:
                out.setdefault(entry_id, InboxEntry(entry_id, _decode(fields)))
            if len(out) >= count:
                break
        return list(out.values())

    def ack(self, entry_ids: list[str]) -> None:
        """Forget commands that were acted on."""
        if entry_ids:
            pipe = self._r.pipeline(transaction=True)
            pipe.xack(self.key, INBOX_GROUP, *entry_ids)
            pipe.xdel(self.key, *entry_ids)
            pipe.execute()

    def pending(self) -> int:
        """Commands not yet acted on."""
        return int(self._r.xlen(self.key))

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        from redis.exceptions import ResponseError  # noqa: PLC0415  (redis only where it is used)

        try:
            self._r.xgroup_create(self.key, INBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True


def _decode(fields: dict[str, str] | None) -> Command | None:
    try:
        return decode_command((fields or {})["c"])
    except (KeyError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
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
            self._inbox.push(CancelJob(job_id, job.pipeline))
            return ControlResult(self._ledger.get(job_id), changed=True)
        raise StaleTransitionError(f"job {job_id} kept changing; try again", job_id=job_id)

    def retry(self, job_id: str, *, tenant_id: str | None = None) -> ControlResult:
        """Queue a failed job again where it failed (same job, next attempt, fresh budgets).
        Idempotent for a job that is already queued or running; other states raise
        IllegalTransitionError."""
        job = self._ledger.get(job_id, tenant_id=tenant_id)
        if job.status in (JobStatus.QUEUED, JobStatus.PROCESSING):
            return ControlResult(job, changed=False)
        if job.status is not JobStatus.FAILED:
            raise IllegalTransitionError(
                f"only failed jobs can be retried; {job_id} is {job.status.value}"
            )
        self._ledger.transition(
            TransitionRequest(
                job_id,
                JobStatus.FAILED,
                JobStatus.QUEUED,
                reason=TransitionReason.RETRY,
                stage_errors=0,
                stage_losses=0,
            )
        )
        self._inbox.push(RequeueJob(job_id))
        return ControlResult(self._ledger.get(job_id), changed=True)
