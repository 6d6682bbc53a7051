"""Fakes shipped with the package so users can test their own stages and workers.

:class:`InMemoryLedger` implements the ledger contract in process memory under one lock. It runs
the same contract tests as the Redis backend, so logic tested against it behaves the same way
against Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from ingest_ray.config import Settings
from ingest_ray.errors import (
    IllegalTransitionError,
    IngestError,
    JobNotFoundError,
    LedgerError,
    PermanentError,
    RetryableError,
    StaleTransitionError,
)
from ingest_ray.ledger.base import (
    CreateOutcome,
    Job,
    JobEvent,
    JobFilter,
    NewJob,
    OutboxEntry,
    OutboxMessage,
    Page,
    QueuedGroup,
    TransitionOutcome,
    TransitionRequest,
)
from ingest_ray.pipelines.builtin import STAGE_FACTORIES
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.stage_host import build_stage
from ingest_ray.stages.base import StageInput, StageOutput, run_each
from ingest_ray.states import (
    DEDUPLICATING,
    JobStatus,
)


@dataclass
class _Row:
    job: Job
    events: list[JobEvent] = field(default_factory=list)


@dataclass
class _Pending:
    message: OutboxMessage
    owner: str | None = None
    claimed_at: float = 0.0
    deliveries: int = 0


class InMemoryLedger:
    """A thread-safe, single-process ledger with the same contract as :class:`RedisLedger`."""

    def __init__(self, *, event_maxlen: int = 1000, clock: Any = None) -> None:
        self._rows: dict[str, _Row] = {}
        self._holders: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.event_maxlen = event_maxlen
        self._clock = clock or (lambda: datetime.now(UTC))
        self._outbox: dict[str, _Pending] = {}
        self._outbox_seq = 0
        #: set to an exception to make every call fail (a Redis outage, in tests)
        self.down: Exception | None = None

    def create(self, job: NewJob) -> CreateOutcome:
        """Create ``job`` unless its document already has a live or completed job."""
        self._check_up()
        with self._lock:
            holder = self._holders.get((job.tenant_id, job.doc_key))
            if holder is not None and self._rows[holder].job.status in DEDUPLICATING:
                return CreateOutcome(holder, created=False, status=self._rows[holder].job.status)
            now = self._clock()
            record = Job(
                job_id=job.job_id, tenant_id=job.tenant_id, doc_key=job.doc_key,
                pipeline=job.pipeline, status=JobStatus.QUEUED, priority=job.priority,
                metadata=dict(job.metadata), created_at=now, updated_at=now,
            )  # fmt: skip
            event = JobEvent(
                seq=1, job_id=job.job_id, kind="created", at=now, to_status=JobStatus.QUEUED,
                reason="create", data={"pipeline": job.pipeline},
            )  # fmt: skip
            self._rows[job.job_id] = _Row(job=record, events=[event])
            self._holders[(job.tenant_id, job.doc_key)] = job.job_id
            return CreateOutcome(job.job_id, created=True, status=JobStatus.QUEUED)

    def create_many(self, jobs: Sequence[NewJob]) -> list[CreateOutcome | LedgerError]:
        """:meth:`create` for each job, in order."""
        return [self.create(job) for job in jobs]

    def transition(self, request: TransitionRequest) -> TransitionOutcome:
        """Apply one transition or raise the same typed errors as the Redis backend."""
        self._check_up()
        result = self._apply(request)
        if isinstance(result, LedgerError):
            raise result
        return result

    def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionOutcome | LedgerError]:
        """Apply each transition; refusals are returned in place."""
        self._check_up()
        return [self._apply(r) for r in requests]

    def _apply(self, req: TransitionRequest) -> TransitionOutcome | LedgerError:
        try:
            reason = req.checked_reason()
        except IllegalTransitionError as exc:
            return exc
        with self._lock:
            row = self._rows.get(req.job_id)
            if row is None:
                return JobNotFoundError(f"no job {req.job_id}", job_id=req.job_id)
            job = row.job
            refusal = self._refusal(req, job)
            if refusal is not None:
                return refusal
            now = self._clock()
            updates = _updates(req, job, now)
            row.job = job.model_copy(update=updates)
            event = JobEvent(
                seq=len(row.events) + 1, job_id=job.job_id,
                kind=req.kind, at=now,
                from_status=req.expected, to_status=req.target,
                reason=reason.value if reason else None, stage=req.stage,
                attempts=row.job.attempts, error=req.error, data=dict(req.data),
            )  # fmt: skip
            row.events.append(event)
            self._append(req.messages)
            return TransitionOutcome(job_id=job.job_id, status=req.target, seq=event.seq)

    def _refusal(self, req: TransitionRequest, job: Job) -> LedgerError | None:
        if job.status is not req.expected:
            return StaleTransitionError(
                f"job {job.job_id} is {job.status.value}, not {req.expected.value}",
                job_id=job.job_id,
                actual_status=job.status.value,
            )
        if req.expected_attempts is not None and job.attempts != req.expected_attempts:
            return StaleTransitionError(
                f"job {job.job_id} is at attempt {job.attempts}, not {req.expected_attempts}",
                job_id=job.job_id,
                actual_status=job.status.value,
            )
        if req.target is JobStatus.QUEUED and req.expected is not JobStatus.QUEUED:
            key = (job.tenant_id, job.doc_key)
            holder = self._holders.get(key)
            if holder not in (None, job.job_id) and self._rows[holder].job.status in DEDUPLICATING:
                return IllegalTransitionError(
                    f"job {holder} already holds this document; {job.job_id} cannot be re-queued",
                    job_id=job.job_id,
                )
            self._holders[key] = job.job_id
        return None

    def get(self, job_id: str, *, tenant_id: str | None = None) -> Job:
        """The job with its history."""
        self._check_up()
        with self._lock:
            row = self._rows.get(job_id)
            if row is None or (tenant_id is not None and row.job.tenant_id != tenant_id):
                raise JobNotFoundError(f"no job {job_id}", job_id=job_id)
            return row.job.model_copy(update={"history": list(row.events)})

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Jobs without history, ``None`` where missing."""
        self._check_up()
        with self._lock:
            return [self._rows[i].job if i in self._rows else None for i in job_ids]

    def list_jobs(self, flt: JobFilter, *, cursor: str | None = None, limit: int = 50) -> Page:
        """Matching jobs, newest first, ``limit`` at a time."""
        self._check_up()
        with self._lock:
            jobs = sorted(
                (r.job for r in self._rows.values()), key=lambda j: j.job_id, reverse=True
            )
        matching = [j for j in jobs if (cursor is None or j.job_id < cursor) and flt.matches(j)]
        page = matching[:limit]
        return Page(items=page, next_cursor=page[-1].job_id if len(matching) > limit else None)

    def counts(self, *, tenant_id: str | None = None) -> dict[JobStatus, int]:
        """Jobs per status."""
        self._check_up()
        out = dict.fromkeys(JobStatus, 0)
        with self._lock:
            for row in self._rows.values():
                if tenant_id is None or row.job.tenant_id == tenant_id:
                    out[row.job.status] += 1
        return out

    def expired_leases(self, *, now: datetime | None = None, limit: int = 100) -> list[str]:
        """Jobs whose lease ran out, oldest expiry first."""
        self._check_up()
        moment = now or self._clock()
        with self._lock:
            leased = [
                r.job
                for r in self._rows.values()
                if r.job.lease_expires_at is not None and r.job.lease_expires_at <= moment
            ]
        leased.sort(key=lambda j: (j.lease_expires_at, j.job_id))
        return [j.job_id for j in leased[:limit]]

    def queued_groups(self) -> list[QueuedGroup]:
        """Queued jobs per (tenant, priority)."""
        self._check_up()
        groups: dict[tuple[str, int], list[str]] = {}
        with self._lock:
            for row in self._rows.values():
                if row.job.status is JobStatus.QUEUED:
                    groups.setdefault((row.job.tenant_id, row.job.priority), []).append(
                        row.job.job_id
                    )
        return [QueuedGroup(t, p, len(ids), min(ids)) for (t, p), ids in sorted(groups.items())]

    def queued_ids(
        self, tenant_id: str, priority: int, *, after: str | None = None, limit: int = 100
    ) -> list[str]:
        """Queued ids of one (tenant, priority), oldest first, above ``after``."""
        self._check_up()
        with self._lock:
            ids = sorted(
                r.job.job_id
                for r in self._rows.values()
                if r.job.status is JobStatus.QUEUED
                and (r.job.tenant_id, r.job.priority) == (tenant_id, priority)
                and (after is None or r.job.job_id > after)
            )
        return ids[:limit]

    def events(self, job_id: str, *, after: int = 0, count: int = 100) -> list[JobEvent]:
        """Events with ``seq > after`` among the last ``event_maxlen``."""
        self._check_up()
        with self._lock:
            row = self._rows.get(job_id)
            kept = row.events[-self.event_maxlen :] if row else []
        return [e for e in kept if e.seq > after][:count]

    # --- the outbox ---------------------------------------------------------------------------

    def outbox_put(self, messages: Sequence[OutboxMessage]) -> None:
        """Append messages that follow no transition."""
        self._check_up()
        with self._lock:
            self._append(messages)

    def _append(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            self._outbox_seq += 1
            self._outbox[f"{self._outbox_seq}-0"] = _Pending(message)

    def outbox_claim(
        self, consumer: str, *, limit: int = 500, min_idle_s: float = 60.0
    ) -> list[OutboxEntry]:
        """Own pending first, then others' stale, then new entries, oldest first."""
        self._check_up()
        now = self._clock().timestamp()
        with self._lock:
            order = sorted(self._outbox.items(), key=lambda kv: int(kv[0].split("-")[0]))
            own = [(i, p) for i, p in order if p.owner == consumer]
            stale = [
                (i, p)
                for i, p in order
                if p.owner not in (None, consumer) and now - p.claimed_at >= min_idle_s
            ]
            fresh = [(i, p) for i, p in order if p.owner is None]  # fmt: skip
            out = []
            for entry_id, pending in (own + stale + fresh)[:limit]:
                pending.owner, pending.claimed_at = consumer, now
                pending.deliveries += 1
                out.append(OutboxEntry(entry_id, pending.message, pending.deliveries))
            return out

    def outbox_ack(self, entry_ids: Sequence[str]) -> None:
        """Forget published entries."""
        self._check_up()
        with self._lock:
            for entry_id in entry_ids:
                self._outbox.pop(entry_id, None)

    def outbox_depth(self) -> int:
        """Entries not yet acknowledged."""
        with self._lock:
            return len(self._outbox)

    def prune(
        self,
        before: datetime,
        *,
        tenant_id: str | None = None,
        exclude_tenants: Sequence[str] = (),
        batch: int = 1000,
    ) -> int:
        """Forget finished jobs that finished before ``before``."""
        self._check_up()
        with self._lock:
            doomed = [
                job_id
                for job_id, row in self._rows.items()
                if row.job.status.is_terminal
                and row.job.finished_at is not None
                and row.job.finished_at < before
                and (tenant_id is None or row.job.tenant_id == tenant_id)
                and row.job.tenant_id not in exclude_tenants
            ]
            for job_id in doomed:
                job = self._rows.pop(job_id).job
                key = (job.tenant_id, job.doc_key)
                if self._holders.get(key) == job_id:
                    del self._holders[key]
        return len(doomed)

    def ping(self) -> bool:
        """True unless :attr:`down` is set."""
        return self.down is None

    def _check_up(self) -> None:
        if self.down is not None:
            raise self.down

    def close(self) -> None:
        """Nothing to release."""


def _updates(req: TransitionRequest, job: Job, now: datetime) -> dict[str, Any]:
    updates: dict[str, Any] = {
        "status": req.target,
        "updated_at": now,
        "attempts": req.attempts if req.attempts is not None else job.attempts + req.attempts_delta,
    }
    if req.output_stage is not None:
        updates["outputs"] = {**job.outputs, req.output_stage: dict(req.output or {})}
    if req.stage:
        updates["stage"] = req.stage
    updates.update(_budget_updates(req, now))
    if req.error is not None:
        updates["error"] = req.error
    elif req.target is JobStatus.QUEUED:
        updates["error"] = None
    if req.target is JobStatus.PROCESSING and job.started_at is None:
        updates["started_at"] = now
    if req.target.is_terminal:
        updates["finished_at"] = now
    elif req.target is JobStatus.QUEUED:
        updates["finished_at"] = None
    if req.target.is_terminal or req.target is JobStatus.QUEUED or req.lease_s == 0:
        updates["lease_expires_at"] = None
    elif req.lease_s is not None:
        updates["lease_expires_at"] = now + timedelta(seconds=req.lease_s)
    return updates


def _budget_updates(req: TransitionRequest, now: datetime) -> dict[str, Any]:
    updates: dict[str, Any] = {
        "next_attempt_at": None
        if req.retry_in_s is None
        else now + timedelta(seconds=req.retry_in_s)
    }
    if req.stage_errors is not None:
        updates["stage_errors"] = req.stage_errors
    if req.stage_losses is not None:
        updates["stage_losses"] = req.stage_losses
    return updates


def _job_id(job: Job) -> str:
    return job.job_id


class ScriptedStage:
    """A stage whose behaviour the request scripts, for tests of the runtime and of pipelines.

    Request metadata (``IngestRequest.metadata``) may hold, per stage name:
    ``fail_times: {stage: n}`` (fail retryably on the first n tries), ``permanent: [stage]``
    (fail permanently), ``fail_while: {stage: redis_key}`` (fail permanently while that key
    exists), ``sleep_s: {stage: s}`` (take that long), ``finish: [stage]`` (end the
    pipeline there), ``crash: {stage: n}`` (kill the worker process on the first n tries).
    Every execution is counted in Redis (``{prefix}scripted:runs``, field ``doc_key|stage``)
    and every success recorded as an idempotent side effect (``{prefix}scripted:effects``, same
    field), so tests can tell re-runs from duplicate effects. A sleeping stage checks its
    cancellation token every 50 ms; ``compensate`` removes a cancelled job's effects.
    """

    batch_size = 8

    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        self._prefix = settings.redis_prefix
        self._redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    async def run(self, item: StageInput) -> StageOutput:
        """Do what the script says for this stage."""
        script = item.metadata
        field = f"{item.doc_key}|{self.name}"
        self._redis.hincrby(f"{self._prefix}scripted:runs", field, 1)
        if item.attempt <= int(script.get("crash", {}).get(self.name, 0)):
            os._exit(3)  # an actor dying mid-call, as a segfault in a parser would
        await _sleep_unless_cancelled(float(script.get("sleep_s", {}).get(self.name, 0)), item)
        item.check_cancelled()
        if self.name in script.get("permanent", []):
            raise PermanentError(f"{self.name} was told to fail for good")
        flag = script.get("fail_while", {}).get(self.name)
        if flag and self._redis.exists(flag):
            raise PermanentError(f"{self.name} fails while {flag} exists")
        if item.attempt <= int(script.get("fail_times", {}).get(self.name, 0)):
            raise RetryableError(f"{self.name} flaked on attempt {item.attempt}")
        self._redis.hset(f"{self._prefix}scripted:effects", field, item.job_id)
        return StageOutput(
            data={"stage": self.name, "attempt": item.attempt},
            finish=self.name in script.get("finish", []),
        )

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Each item on its own; one failure does not fail the others."""
        return await run_each(self.run, items)

    async def compensate(self, items: Sequence[StageInput]) -> None:
        """Take back the effects of cancelled jobs."""
        fields = [f"{item.doc_key}|{self.name}" for item in items]
        if fields:
            self._redis.hdel(f"{self._prefix}scripted:effects", *fields)

    async def aclose(self) -> None:
        """Close the Redis connection."""
        self._redis.close()


def _cancelled(item: StageInput) -> IngestError | None:
    try:
        item.check_cancelled()
    except IngestError as exc:
        return exc
    return None


async def _sleep_unless_cancelled(delay: float, item: StageInput) -> None:
    deadline = time.monotonic() + delay
    while not item.cancelled and time.monotonic() < deadline:
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def use_scripted_stages(catalog: Catalog) -> None:
    """A plugin (``INGEST_RAY_PLUGINS``) that runs every stage as a :class:`ScriptedStage`."""
    for name in catalog.stages:
        catalog.stages[name] = "ingest_ray.testing:ScriptedStage"


def flaky_try_fails(job_id: str, stage: str, attempt: int, rate: float, *,
                    max_failed_try: int) -> bool:  # fmt: skip
    """Whether try ``attempt`` of ``stage`` for ``job_id`` is one :class:`FlakyStage` fails: a
    pure function, so a run is reproducible; never a try after ``max_failed_try``."""
    if attempt > max_failed_try:
        return False
    digest = hashlib.sha256(f"{job_id}|{stage}|{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < rate


class FlakyStage:
    """A built-in stage that fails retryably at a rate (``sections["flaky"]``: ``rate``, a share
    of tries, and ``stages``, the stage names to wrap) and may linger after its work is done
    (``after_s``: stage name -> seconds, e.g. an index write that landed just before the job
    was cancelled). Which tries fail is a pure function of (job, stage, attempt), so a run is
    reproducible. For chaos tests: a recoverable error must never become a permanent failure.

    A transient fault clears: only tries up to ``max_failed_try`` (default 2) may fail, so
    an injected fault never outlasts the smallest retry budget of the built-in stages (3
    tries). Without that bound, three unlucky tries in a row at 5% each happen about once in
    8,000 job-stages, and a chaos run of a few hundred jobs would fail now and then on the
    retry policy doing its job."""

    def __init__(self, settings: Settings, name: str) -> None:
        flaky = settings.sections.get("flaky", {})
        self.name = name
        self.rate = float(flaky.get("rate", 0.0)) if name in flaky.get("stages", []) else 0.0
        self.after_s = float(flaky.get("after_s", {}).get(name, 0.0))
        self.max_failed_try = int(flaky.get("max_failed_try", 2))
        self._inner = build_stage(STAGE_FACTORIES[name], settings, name)
        self.batch_size = self._inner.batch_size
        self.injected = 0

    def _fails(self, item: StageInput) -> bool:
        return flaky_try_fails(item.job_id, self.name, item.attempt, self.rate,
                               max_failed_try=self.max_failed_try)  # fmt: skip

    async def run(self, item: StageInput) -> StageOutput:
        """The wrapped stage, unless this try is one that fails."""
        if self._fails(item):
            self.injected += 1
            raise RetryableError(f"{self.name}: injected transient failure (try {item.attempt})")
        result = await self._inner.run(item)
        await _sleep_unless_cancelled(self.after_s, item)
        item.check_cancelled()
        return result

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """The wrapped stage for the tries that do not fail."""
        keep = [i for i in items if not self._fails(i)]
        done = iter(await self._inner.run_batch(keep) if keep else [])
        if keep:
            await _sleep_unless_cancelled(self.after_s, keep[0])
        out: list[StageOutput | IngestError] = []
        for item in items:
            if item in keep:
                result = next(done)
                out.append(_cancelled(item) or result)
            else:
                self.injected += 1
                out.append(RetryableError(f"{self.name}: injected transient failure"))
        return out

    async def compensate(self, items: Sequence[StageInput]) -> None:
        """The wrapped stage's compensation, if it has one."""
        hook = getattr(self._inner, "compensate", None)
        if hook is not None:
            await hook(items)

    async def aclose(self) -> None:
        """Close the wrapped stage."""
        await self._inner.aclose()


def use_flaky_stages(catalog: Catalog) -> None:
    """A plugin that wraps every built-in stage in :class:`FlakyStage` (rates come from the
    settings' ``flaky`` section where the stage runs)."""
    for name in catalog.stages:
        if name in STAGE_FACTORIES:
            catalog.stages[name] = "ingest_ray.testing:FlakyStage"
