"""Redis ledger backend: Lua compare-and-set transitions, indexes in sorted sets, event streams.

Key layout (all under the configured prefix, ``ir:`` by default):

- ``job:{id}`` hash, ``job:{id}:events`` capped stream (ids ``seq-0``), and ``job:{id}:history``
  list: the events 1..n, written only once the job has more events than the stream keeps (a
  job's history is the list, then the stream's later events)
- ``idem:{tenant}|{doc_key}`` -> the job holding that document for that tenant
- ``idx:*`` sorted sets (score 0, ordered by the ULID job id, so lexical = creation order)
- ``idx:fair:{tenant}|{priority}`` the queued jobs of each group and ``idx:fair-groups`` the
  groups that have any: the fair backlog index (``redis_queued.py``)
- ``leases`` sorted set scored by lease expiry (epoch ms)
- ``outbox`` stream of messages to publish, appended by the transition script in the same step
  and read by the relay through the consumer group ``relay``

Names come from :class:`ingest_ray.keys.RedisKeys`; the scripts build the same names from the
prefix, so this backend expects a single Redis (not Cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast

import orjson
import redis

from ingest_ray.errors import (
    DamagedRecordError,
    IllegalTransitionError,
    JobNotFoundError,
    LedgerError,
    StaleTransitionError,
)
from ingest_ray.ids import id_ceiling, id_floor
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger import redis_prune
from ingest_ray.ledger.base import (
    CreateOutcome,
    Job,
    JobError,
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
from ingest_ray.ledger.redis_queued import QueuedIndex
from ingest_ray.ledger.redis_scripts import run_batched
from ingest_ray.states import (
    DEDUPLICATING,
    TERMINAL,
    JobStatus,
)

log = logging.getLogger(__name__)

_TERMINAL_ARG = ",".join(sorted(s.value for s in TERMINAL))
_DEDUP_ARG = ",".join(sorted(s.value for s in DEDUPLICATING))
MAX_PAGE = 1000
#: jobs per ``EVALSHA`` of ``create.lua`` and ``transition.lua``: a call runs for about 30 us
#: per transition, so a batch keeps Redis from other clients for about 2 ms at most
JOBS_PER_CALL = 64
OUTBOX_GROUP = "relay"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _dt(ms: str | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, UTC)


def _now_ms() -> int:
    return _ms(datetime.now(UTC))


def _load_script(name: str) -> str:
    return resources.files("ingest_ray.ledger").joinpath("lua", name).read_text()


class RedisLedger:
    """The Redis implementation of :class:`ingest_ray.ledger.base.Ledger`."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "ir:",
        event_maxlen: int = 1000,
        client: redis.Redis | None = None,
    ) -> None:
        self._r: redis.Redis = client or redis.Redis.from_url(url, decode_responses=True)
        # outbox values are bytes (a dead letter carries the original value unchanged)
        raw_kwargs = {**self._r.connection_pool.connection_kwargs, "decode_responses": False}
        self._raw = redis.Redis(connection_pool=redis.ConnectionPool(**raw_kwargs))
        self.prefix = prefix
        self.keys = RedisKeys(prefix)
        self._group_ready = False
        self.event_maxlen = event_maxlen
        self._create = self._r.register_script(_load_script("create.lua"))
        self._transition = self._r.register_script(_load_script("transition.lua"))
        self._prune = self._r.register_script(_load_script("prune.lua"))
        self._queued = QueuedIndex(self._r, self.keys)

    @classmethod
    def from_settings(cls, settings: Any) -> RedisLedger:
        """Build from :class:`ingest_ray.config.Settings`."""
        return cls(
            settings.redis_url,
            prefix=settings.redis_prefix,
            event_maxlen=settings.event_stream_maxlen,
        )

    # --- create -------------------------------------------------------------------------------

    def create(self, job: NewJob) -> CreateOutcome:
        """Create a job, or return the live/completed one already held for its document."""
        (outcome,) = self.create_many([job])
        if isinstance(outcome, LedgerError):
            raise outcome
        return outcome

    def create_many(self, jobs: Sequence[NewJob]) -> list[CreateOutcome | LedgerError]:
        """Create many jobs in one round trip (each create is atomic on its own, in order).

        Up to :data:`JOBS_PER_CALL` jobs share one ``EVALSHA``; the calls share one pipeline.
        A create the script could not do (a job id already taken, a key of the wrong type where
        the document's holder should be) is that job's :class:`DamagedRecordError`.
        """
        head = [self.prefix, self.event_maxlen, _DEDUP_ARG]
        items = [self._create_args(job) for job in jobs]
        replies = run_batched(self._r, self._create, head, items, JOBS_PER_CALL)
        return [self._create_outcome(job, raw) for job, raw in zip(jobs, replies, strict=True)]

    def _create_args(self, job: NewJob) -> list[Any]:
        """One job's share of the script's ARGV."""
        now = _now_ms()
        event = {
            "seq": 1,
            "job_id": job.job_id,
            "kind": "created",
            "at": now,
            "from_status": None,
            "to_status": JobStatus.QUEUED.value,
            "reason": "create",
            "stage": None,
            "attempts": 0,
            "error": None,
            "data": {"pipeline": job.pipeline},
        }
        return [
            job.job_id,
            job.tenant_id,
            job.doc_key,
            job.pipeline,
            job.priority,
            _dumps(job.metadata),
            now,
            _dumps(event),
        ]

    @staticmethod
    def _create_outcome(job: NewJob, raw: list[Any]) -> CreateOutcome | LedgerError:
        if int(raw[0]) == -9:
            return DamagedRecordError(f"create of {job.job_id}: {raw[1]}", job_id=job.job_id)
        return CreateOutcome(job_id=raw[1], created=bool(int(raw[0])), status=JobStatus(raw[2]))

    # --- transitions --------------------------------------------------------------------------

    def transition(self, request: TransitionRequest) -> TransitionOutcome:
        """Apply one transition; raise a typed error when it is illegal or stale."""
        (result,) = self.transition_many([request])
        if isinstance(result, LedgerError):
            raise result
        return result

    def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionOutcome | LedgerError]:
        """Apply many transitions in one round trip; refusals come back as error values.

        Up to :data:`JOBS_PER_CALL` transitions share one ``EVALSHA`` (each still a
        compare-and-set of its own, applied in order); the calls share one pipeline.
        """
        results: list[TransitionOutcome | LedgerError | None] = [None] * len(requests)
        head = [self.prefix, _TERMINAL_ARG, _DEDUP_ARG, self.event_maxlen]
        sent: list[int] = []
        items: list[list[Any]] = []
        for i, request in enumerate(requests):
            try:
                items.append(self._transition_args(request))
            except IllegalTransitionError as exc:
                results[i] = exc
                continue
            sent.append(i)
        replies = run_batched(self._r, self._transition, head, items, JOBS_PER_CALL)
        for i, raw in zip(sent, replies, strict=True):
            results[i] = self._outcome(requests[i], raw)
        return [r for r in results if r is not None]

    def _transition_args(self, req: TransitionRequest) -> list[Any]:
        """One transition's share of the script's ARGV: its spec (one JSON array of strings),
        its event, its output and its outbox messages."""
        reason = req.checked_reason()
        now = _now_ms()
        event = {
            "job_id": req.job_id,
            "kind": req.kind,
            "at": now,
            "from_status": req.expected.value,
            "to_status": req.target.value,
            "reason": reason.value if reason else None,
            "stage": req.stage,
            "error": req.error.model_dump() if req.error else None,
            "data": req.data,
        }
        if req.error is not None:
            error_arg = req.error.model_dump_json()
        elif req.target is JobStatus.QUEUED:
            error_arg = "-"
        else:
            error_arg = ""
        spec = [
            req.job_id,
            req.expected.value,
            req.target.value,
            str(now),
            req.stage or "",
            error_arg,
            str(req.attempts_delta),
            _optional(req.expected_attempts),
            _optional_ms(req.lease_s),
            _optional(req.attempts),
            req.output_stage or "",
            _optional(req.stage_errors),
            _optional(req.stage_losses),
            _optional_ms(req.retry_in_s),
        ]
        return [
            _dumps(spec),
            _dumps(event),
            _dumps(req.output) if req.output is not None else "",
            len(req.messages),
            *(arg for m in req.messages for arg in _message_args(m)),
        ]

    @staticmethod
    def _outcome(req: TransitionRequest, raw: list[Any]) -> TransitionOutcome | LedgerError:
        code = int(raw[0])
        if code == 1:
            return TransitionOutcome(job_id=req.job_id, status=req.target, seq=int(raw[1]))
        if code == -1:
            return JobNotFoundError(f"no job {req.job_id}", job_id=req.job_id)
        if code == -2:
            return StaleTransitionError(
                f"job {req.job_id} is {raw[1]}, not {req.expected.value}",
                job_id=req.job_id,
                actual_status=raw[1],
            )
        if code == -9:
            return DamagedRecordError(f"transition of {req.job_id}: {raw[1]}", job_id=req.job_id)
        if code == -3:
            return StaleTransitionError(
                f"job {req.job_id} is at attempt {raw[1]}, not {req.expected_attempts}",
                job_id=req.job_id,
                actual_status=req.expected.value,
            )
        return IllegalTransitionError(
            f"job {raw[1]} already holds this document; {req.job_id} cannot be re-queued",
            job_id=req.job_id,
        )

    # --- reads --------------------------------------------------------------------------------

    def get(self, job_id: str, *, tenant_id: str | None = None) -> Job:
        """The job and its full history; another tenant's job is reported as not found. A
        record Redis cannot read (a key of the wrong type) raises :class:`DamagedRecordError`
        (its tenant cannot be read either; job ids are not guessable)."""
        key = self._key(job_id)
        pipe = self._r.pipeline(transaction=True)  # the list and the stream of one moment
        pipe.hgetall(key)
        pipe.lrange(self.keys.history(job_id), 0, -1)
        pipe.xrange(self.keys.events(job_id), "-", "+")
        replies = pipe.execute(raise_on_error=False)
        damage = next((r for r in replies if isinstance(r, redis.ResponseError)), None)
        if damage is not None:
            raise DamagedRecordError(f"job {job_id}: damaged record: {damage}", job_id=job_id)
        fields, kept, stream = replies
        job = self._job(fields, _history(kept, stream))
        if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
            raise JobNotFoundError(f"no job {job_id}", job_id=job_id)
        return job

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Jobs without history, in input order, ``None`` where missing or damaged (a key Redis
        cannot read as a hash is logged and skipped, so one damaged record does not fail every
        read that includes it)."""
        pipe = self._r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._key(job_id))
        jobs: list[Job | None] = []
        for job_id, fields in zip(job_ids, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(fields, redis.ResponseError):
                log.warning("job %s: damaged record skipped: %s", job_id, fields)
                jobs.append(None)
            else:
                jobs.append(self._job(fields, []))
        return jobs

    def list_jobs(self, flt: JobFilter, *, cursor: str | None = None, limit: int = 50) -> Page:
        """Jobs matching ``flt``, newest first. The most selective index is scanned and the
        remaining filters are applied to each candidate."""
        limit = max(1, min(limit, MAX_PAGE))
        items: list[Job] = []
        for job in self._scan(flt, cursor, batch=max(limit, 50)):
            if job is not None and flt.matches(job):
                items.append(job)
                if len(items) > limit:
                    break
        if len(items) > limit:
            return Page(items=items[:limit], next_cursor=items[limit - 1].job_id)
        return Page(items=items, next_cursor=None)

    def _scan(self, flt: JobFilter, cursor: str | None, *, batch: int) -> Iterator[Job | None]:
        index = self._pick_index(flt)
        upper = f"({cursor}" if cursor else "+"
        if flt.created_before is not None:
            ceiling = f"[{id_ceiling(flt.created_before)}"
            upper = ceiling if upper == "+" or ceiling < upper else upper
        lower = f"[{id_floor(flt.created_after)}" if flt.created_after else "-"
        while True:
            ids = cast(
                "list[str]",
                self._r.zrange(index, upper, lower, desc=True, bylex=True, offset=0, num=batch),
            )
            if not ids:
                return
            yield from self.get_many(ids)
            if len(ids) < batch:
                return
            upper = f"({ids[-1]}"

    def _pick_index(self, flt: JobFilter) -> str:
        p = self.prefix
        if flt.tenant_id is not None and flt.doc_key is not None:
            return f"{p}idx:doc:{flt.tenant_id}|{flt.doc_key}"
        candidates = []
        if flt.tenant_id is not None and flt.status is not None:
            candidates.append(f"{p}idx:tenant:{flt.tenant_id}:status:{flt.status.value}")
        if flt.stage is not None:
            candidates.append(f"{p}idx:stage:{flt.stage}")
        if flt.status is not None:
            candidates.append(f"{p}idx:status:{flt.status.value}")
        if flt.tenant_id is not None:
            candidates.append(f"{p}idx:tenant:{flt.tenant_id}")
        if flt.pipeline is not None:
            candidates.append(f"{p}idx:pipeline:{flt.pipeline}")
        if not candidates:
            return f"{p}idx:all"
        pipe = self._r.pipeline(transaction=False)
        for name in candidates:
            pipe.zcard(name)
        sizes = pipe.execute()
        return min(zip(sizes, range(len(candidates)), candidates, strict=True))[2]

    def counts(self, *, tenant_id: str | None = None) -> dict[JobStatus, int]:
        """Jobs per status (exact: the sizes of the status indexes)."""
        pipe = self._r.pipeline(transaction=False)
        for status in JobStatus:
            scope = f"tenant:{tenant_id}:" if tenant_id is not None else ""
            pipe.zcard(f"{self.prefix}idx:{scope}status:{status.value}")
        return dict(zip(JobStatus, (int(n) for n in pipe.execute()), strict=True))

    def expired_leases(self, *, now: datetime | None = None, limit: int = 100) -> list[str]:
        """Ids of jobs whose lease expired before ``now``, oldest expiry first."""
        until = _ms(now) if now is not None else _now_ms()
        return cast(
            "list[str]",
            self._r.zrangebyscore(f"{self.prefix}leases", "-inf", until, start=0, num=limit),
        )

    def queued_groups(self) -> list[QueuedGroup]:
        """Queued jobs per (tenant, priority) (see ``redis_queued.py``)."""
        return self._queued.groups()

    def queued_ids(
        self, tenant_id: str, priority: int, *, after: str | None = None, limit: int = 100
    ) -> list[str]:
        """Queued ids of one (tenant, priority), oldest first."""
        return self._queued.ids(tenant_id, priority, after=after, limit=limit)

    def events(self, job_id: str, *, after: int = 0, count: int = 100) -> list[JobEvent]:
        """Events with ``seq > after``, oldest first."""
        entries = self._r.xrange(self.keys.events(job_id), f"({after}-0", "+", count=count)
        return [_event(orjson.loads(fields["e"])) for _, fields in cast("list[Any]", entries)]

    # --- the outbox ---------------------------------------------------------------------------

    def outbox_put(self, messages: Sequence[OutboxMessage]) -> None:
        """Append messages that follow no transition, in one round trip."""
        if not messages:
            return
        pipe = self._raw.pipeline(transaction=True)
        for message in messages:
            fields = dict(zip(("t", "k", "v", "id", "h"), _message_args(message), strict=True))
            pipe.xadd(self.keys.outbox, cast("Any", fields))
        pipe.execute()

    def outbox_claim(
        self, consumer: str, *, limit: int = 500, min_idle_s: float = 60.0
    ) -> list[OutboxEntry]:
        """Own pending entries first, then others' stale ones, then new ones (at most ``limit``)."""
        try:
            return self._claim(consumer, limit, min_idle_s)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # the stream was deleted (a Redis without its data)
            return self._claim(consumer, limit, min_idle_s)

    def _claim(self, consumer: str, limit: int, min_idle_s: float) -> list[OutboxEntry]:
        self._ensure_group()
        key, group = self.keys.outbox, OUTBOX_GROUP
        found: dict[str, OutboxEntry] = {}
        own: Any = self._raw.xreadgroup(group, consumer, {key: "0"}, count=limit)
        self._collect(own[0][1] if own else [], found)
        if len(found) < limit:
            claimed: Any = self._raw.xautoclaim(
                key, group, consumer, int(min_idle_s * 1000), "0-0", count=limit - len(found)
            )
            self._collect(claimed[1], found)
        if len(found) < limit:
            fresh: Any = self._raw.xreadgroup(group, consumer, {key: ">"}, count=limit - len(found))
            self._collect(fresh[0][1] if fresh else [], found)
        return list(found.values())

    def _collect(self, entries: list[Any], found: dict[str, OutboxEntry]) -> None:
        dropped = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if not fields:  # deleted while pending: nothing left to send
                dropped.append(entry_id)
            elif entry_id not in found:
                found[entry_id] = OutboxEntry(entry_id, _message(fields))
        self.outbox_ack(dropped)

    def outbox_ack(self, entry_ids: Sequence[str]) -> None:
        """Acknowledge and delete published entries."""
        if entry_ids:
            pipe = self._raw.pipeline(transaction=True)
            pipe.xack(self.keys.outbox, OUTBOX_GROUP, *entry_ids)
            pipe.xdel(self.keys.outbox, *entry_ids)
            pipe.execute()

    def outbox_depth(self) -> int:
        """Entries not yet acknowledged (acknowledged ones are deleted)."""
        return int(self._r.xlen(self.keys.outbox))

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self._raw.xgroup_create(self.keys.outbox, OUTBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def prune(
        self,
        before: datetime,
        *,
        tenant_id: str | None = None,
        exclude_tenants: Sequence[str] = (),
        batch: int = 1000,
    ) -> int:
        """Delete finished jobs that finished before ``before`` (see ``redis_prune.py``)."""
        return redis_prune.prune(
            self._r, self.keys, self._prune, before,
            tenant_id=tenant_id, exclude_tenants=exclude_tenants, batch=batch,
        )  # fmt: skip

    def ping(self) -> bool:
        """Whether Redis answers."""
        return bool(self._r.ping())

    def close(self) -> None:
        """Release the connection pools."""
        self._r.close()
        self._raw.close()

    # --- helpers ------------------------------------------------------------------------------

    def _key(self, job_id: str) -> str:
        return self.keys.job(job_id)

    @staticmethod
    def _job(row: dict[str, str], history: list[JobEvent]) -> Job | None:
        if not row:
            return None
        error = row.get("error")
        outputs = {k[4:]: orjson.loads(v) for k, v in row.items() if k.startswith("out:")}
        return Job(
            job_id=row["job_id"],
            tenant_id=row["tenant_id"],
            doc_key=row["doc_key"],
            pipeline=row["pipeline"],
            status=JobStatus(row["status"]),
            stage=row.get("stage"),
            priority=int(row.get("priority") or 5),
            attempts=int(row.get("attempts") or 0),
            error=JobError.model_validate_json(error) if error else None,
            metadata=orjson.loads(row.get("metadata") or "{}"),
            created_at=cast(datetime, _dt(row["created_at"])),
            updated_at=cast(datetime, _dt(row["updated_at"])),
            started_at=_dt(row.get("started_at")),
            finished_at=_dt(row.get("finished_at")),
            lease_expires_at=_dt(row.get("lease_expires_at")),
            next_attempt_at=_dt(row.get("next_attempt_at")),
            stage_errors=int(row.get("stage_errors") or 0),
            stage_losses=int(row.get("stage_losses") or 0),
            outputs=outputs,
            history=history,
        )


def _dumps(value: Any) -> bytes:
    """Compact JSON (orjson: several times faster than the standard library on this path)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _history(kept: list[str], stream: list[Any]) -> list[JobEvent]:
    """A job's whole history: the ``:history`` list holds events 1..n (written once the job has
    had more events than the capped stream keeps; ledgers written before 2026-12-06 hold every
    event there), and the stream holds every later one."""
    events = [_event(orjson.loads(h)) for h in kept]
    after = events[-1].seq if events else 0
    for entry_id, fields in stream:  # entry ids are "{seq}-0"
        if int(entry_id.partition("-")[0]) > after:
            events.append(_event(orjson.loads(fields["e"])))
    return events


def _optional(value: int | None) -> str:
    return "" if value is None else str(value)


def _optional_ms(seconds: float | None) -> str:
    return "" if seconds is None else str(int(seconds * 1000))


def _message_args(message: OutboxMessage) -> tuple[str, str, bytes, str, bytes]:
    return (
        message.topic,
        message.key if message.key is not None else "",
        message.value,
        message.event_id,
        _dumps(message.headers),
    )


def _message(fields: dict[bytes, bytes]) -> OutboxMessage:
    key = fields[b"k"].decode()
    return OutboxMessage(
        topic=fields[b"t"].decode(),
        key=key or None,
        value=fields[b"v"],
        event_id=fields[b"id"].decode(),
        headers=tuple((str(k), str(v)) for k, v in orjson.loads(fields[b"h"])),
    )


def _event(data: dict[str, Any]) -> JobEvent:
    data["at"] = _dt(str(data["at"]))
    if data.get("data") == []:  # cjson cannot tell an empty object from an empty array
        data["data"] = {}
    return JobEvent.model_validate(data)
