"""The job ledger's contract: models, requests and the protocol every backend implements.

The ledger is the durable truth about jobs. Backends (Redis and PostgreSQL) apply each
transition atomically as a compare-and-set on the expected current status, append the transition
to the job's history and event stream in the same step, and enforce one live job per
(tenant_id, doc_key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ingest_ray.errors import IllegalTransitionError, LedgerError
from ingest_ray.ids import new_id
from ingest_ray.states import JobStatus, TransitionReason, check_transition, default_reason

EventKind = Literal["created", "transition", "stage"]


class JobError(BaseModel):
    """Why a job or stage failed. ``kind`` tells the stage's own error (``error``) from a try
    the infrastructure lost (``lost``: the actor died, the lease ran out)."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    stage: str | None = None
    retryable: bool = False
    kind: Literal["error", "lost"] = "error"


class JobEvent(BaseModel):
    """One entry of a job's history and event stream. ``seq`` starts at 1 and only grows."""

    model_config = ConfigDict(frozen=True)

    seq: int
    job_id: str
    kind: EventKind
    at: datetime
    from_status: JobStatus | None = None
    to_status: JobStatus
    reason: str | None = None
    stage: str | None = None
    attempts: int = 0
    error: JobError | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Job(BaseModel):
    """A job record as the ledger holds it.

    ``attempts`` is the try number of the current stage: it only grows while the stage runs and
    is the fencing token of every stage write. ``stage_errors`` counts the tries that ended in
    the stage's own error (the retry policy's budget), ``stage_losses`` the tries lost to the
    infrastructure (actor death, expired lease), which have a budget of their own.
    ``next_attempt_at`` is when a scheduled retry may run.
    """

    model_config = ConfigDict(frozen=True)

    job_id: str
    tenant_id: str
    doc_key: str
    pipeline: str
    status: JobStatus
    stage: str | None = None
    priority: int = 5
    attempts: int = 0
    error: JobError | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    next_attempt_at: datetime | None = None
    stage_errors: int = 0
    stage_losses: int = 0
    #: small JSON results of the stages that completed, by stage name
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    history: list[JobEvent] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NewJob:
    """What it takes to create a job; ``job_id`` is assigned here so batches can refer to it."""

    tenant_id: str
    doc_key: str
    pipeline: str
    priority: int = 5
    metadata: dict[str, Any] = field(default_factory=dict)
    job_id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        if not 0 <= self.priority <= 9:
            raise ValueError(f"priority must be 0..9, got {self.priority}")
        if "|" in self.tenant_id or not self.tenant_id:
            raise ValueError(f"invalid tenant_id {self.tenant_id!r}")
        if not self.doc_key:
            raise ValueError("doc_key must not be empty")


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    """Result of an idempotent create: the job that now represents (tenant_id, doc_key)."""

    job_id: str
    created: bool
    status: JobStatus


@dataclass(frozen=True)
class OutboxMessage:
    """A Kafka message recorded in the ledger in the same atomic step as the change it follows,
    and published afterwards by the outbox relay. ``event_id`` is stable across redeliveries, so
    consumers drop what they already applied. ``value`` is the exact bytes to publish."""

    topic: str
    key: str | None
    value: bytes
    event_id: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OutboxEntry:
    """A message waiting in the outbox; ``entry_id`` acknowledges it once it was published."""

    entry_id: str
    message: OutboxMessage
    deliveries: int = 1


@dataclass(frozen=True)
class TransitionRequest:
    """Move ``job_id`` from ``expected`` to ``target`` (equal for a stage update in processing).

    ``expected_attempts`` makes the compare-and-set finer: a worker whose lease expired and whose
    stage was handed to another attempt can no longer move the job. ``attempts`` sets the counter
    (it overrides ``attempts_delta``). ``lease_s`` sets (or, with 0, clears) the job's lease;
    terminal and queued states always clear it. ``output`` is stored as the job's output of
    ``output_stage`` in the same atomic step, and so are ``messages`` in the outbox.
    ``stage_errors`` / ``stage_losses`` set the budgets' counters when given; ``retry_in_s`` sets
    ``next_attempt_at`` (any transition without it clears it).
    """

    job_id: str
    expected: JobStatus
    target: JobStatus
    reason: TransitionReason | None = None
    stage: str | None = None
    error: JobError | None = None
    attempts_delta: int = 0
    expected_attempts: int | None = None
    lease_s: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    attempts: int | None = None
    output_stage: str | None = None
    output: dict[str, Any] | None = None
    messages: tuple[OutboxMessage, ...] = ()
    stage_errors: int | None = None
    stage_losses: int | None = None
    retry_in_s: float | None = None

    @property
    def kind(self) -> EventKind:
        """``transition`` for a status change, ``stage`` for an update within processing."""
        return "transition" if self.expected is not self.target else "stage"

    def checked_reason(self) -> TransitionReason | None:
        """The transition's reason, raising :class:`IllegalTransitionError` for an illegal move."""
        if self.expected is not self.target:
            reason = self.reason or default_reason(self.expected, self.target)
            check_transition(self.expected, self.target, reason)
            return reason
        if self.expected is not JobStatus.PROCESSING:
            raise IllegalTransitionError(
                f"only a processing job takes stage updates, not a {self.expected.value} one",
                job_id=self.job_id,
            )
        return self.reason


@dataclass(frozen=True)
class TransitionOutcome:
    """A transition that was applied; ``seq`` is the id of the event it appended."""

    job_id: str
    status: JobStatus
    seq: int


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters for listing jobs; all given filters must match."""

    tenant_id: str | None = None
    status: JobStatus | None = None
    stage: str | None = None
    pipeline: str | None = None
    doc_key: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, job: Job) -> bool:
        """Whether ``job`` passes every filter that is set."""
        return (
            (self.tenant_id is None or job.tenant_id == self.tenant_id)
            and (self.status is None or job.status is self.status)
            and (self.stage is None or job.stage == self.stage)
            and (self.pipeline is None or job.pipeline == self.pipeline)
            and (self.doc_key is None or job.doc_key == self.doc_key)
            and (self.created_after is None or job.created_at >= self.created_after)
            and (self.created_before is None or job.created_at <= self.created_before)
        )


@dataclass(frozen=True, slots=True)
class QueuedGroup:
    """The queued jobs of one (tenant, priority): how many, and the oldest one's id (a ULID, so
    also its creation time). The Dispatcher pulls its backlog from these groups in fair order."""

    tenant_id: str
    priority: int
    count: int
    oldest_job_id: str


@dataclass(frozen=True, slots=True)
class Page:
    """One page of jobs, newest first; pass ``next_cursor`` back to get the next page."""

    items: list[Job]
    next_cursor: str | None


@runtime_checkable
class Ledger(Protocol):
    """What every ledger backend provides. Implementations must be safe to call from many
    processes at once; all atomicity lives in the backend, not in callers."""

    def create(self, job: NewJob) -> CreateOutcome:
        """Create a job, or return the live/completed one already held for its (tenant, doc_key)."""
        ...

    def create_many(self, jobs: Sequence[NewJob]) -> list[CreateOutcome | LedgerError]:
        """:meth:`create` for many jobs in one round trip; outcomes in input order. A job the
        ledger cannot create (its document's record is damaged, say) comes back as that job's
        :class:`LedgerError` value and the others are still created; :meth:`create` raises it."""
        ...

    def transition(self, request: TransitionRequest) -> TransitionOutcome:
        """Apply one transition atomically, raising a typed :class:`LedgerError` if refused."""
        ...

    def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionOutcome | LedgerError]:
        """:meth:`transition` for many jobs in one round trip; refusals are returned, not raised
        (as is a :class:`~ingest_ray.errors.DamagedRecordError` for a job whose stored record
        cannot be written: the other jobs still apply)."""
        ...

    def get(self, job_id: str, *, tenant_id: str | None = None) -> Job:
        """The job with its history; with ``tenant_id``, another tenant's job is not found."""
        ...

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Jobs without history, in input order, ``None`` where missing or damaged (one round
        trip)."""
        ...

    def list_jobs(self, flt: JobFilter, *, cursor: str | None = None, limit: int = 50) -> Page:
        """Jobs matching ``flt``, newest first, with cursor pagination."""
        ...

    def counts(self, *, tenant_id: str | None = None) -> dict[JobStatus, int]:
        """Number of jobs per status."""
        ...

    def expired_leases(self, *, now: datetime | None = None, limit: int = 100) -> list[str]:
        """Ids of processing jobs whose lease ran out before ``now``."""
        ...

    def queued_groups(self) -> list[QueuedGroup]:
        """Queued jobs per (tenant, priority) that has any (the fair backlog index)."""
        ...

    def queued_ids(
        self, tenant_id: str, priority: int, *, after: str | None = None, limit: int = 100
    ) -> list[str]:
        """Ids of the queued jobs of one (tenant, priority), oldest first, above ``after``."""
        ...

    def events(self, job_id: str, *, after: int = 0, count: int = 100) -> list[JobEvent]:
        """Events of a job with ``seq > after``, oldest first (the stream is capped)."""
        ...

    def outbox_put(self, messages: Sequence[OutboxMessage]) -> None:
        """Record messages that follow no transition (dead letters of unreadable input)."""
        ...

    def outbox_claim(
        self, consumer: str, *, limit: int = 500, min_idle_s: float = 60.0
    ) -> list[OutboxEntry]:
        """Messages to publish, oldest first: ``consumer``'s own unacknowledged ones, then
        those another consumer left unacknowledged for ``min_idle_s``, then new ones."""
        ...

    def outbox_ack(self, entry_ids: Sequence[str]) -> None:
        """Forget published messages."""
        ...

    def outbox_depth(self) -> int:
        """Messages not yet acknowledged."""
        ...

    def prune(
        self,
        before: datetime,
        *,
        tenant_id: str | None = None,
        exclude_tenants: Sequence[str] = (),
        batch: int = 1000,
    ) -> int:
        """Delete finished (completed, failed, cancelled) jobs that finished before ``before``
        (of ``tenant_id`` only, or of every tenant but ``exclude_tenants``): their record,
        history, events, index entries and lease, and their idempotency key where it still
        names them. Answers how many jobs were deleted; running it again deletes nothing."""
        ...

    def ping(self) -> bool:
        """Whether the backend answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
