"""The PostgreSQL ledger's statements and the conversions between its rows and the models.

Each write is one statement: a data-modifying CTE that does the compare-and-set ``UPDATE ...
WHERE status = ... AND attempts = ... RETURNING``, appends the event row, inserts the outbox
rows and sends the ``NOTIFY``, so a transition is atomic even on an autocommit connection and
its parts can never be applied one without the other.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from psycopg.types.json import Jsonb

from ingest_ray.errors import JobNotFoundError, LedgerError, StaleTransitionError
from ingest_ray.ledger.base import (
    Job,
    JobError,
    JobEvent,
    NewJob,
    OutboxEntry,
    OutboxMessage,
    TransitionOutcome,
    TransitionRequest,
)
from ingest_ray.states import TERMINAL, JobStatus

#: a JSON ``\\u0000`` escape (not a literal backslash followed by ``u0000``)
_NUL_ESCAPE: Final = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _dumps(value: Any) -> str:
    """JSON for a ``jsonb`` parameter. ``jsonb`` cannot hold U+0000, so its escape becomes
    U+FFFD (the replacement character): a NUL in a stage's output or an error message (text
    pulled out of a PDF, say) must not fail the write that records it."""
    text = json.dumps(value)
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


#: the statuses in the predicate of the ``jobs_live_doc`` unique index (0001_init.sql) and of
#: the statements below; a unit test holds them equal to ``states.DEDUPLICATING``
LIVE_STATUSES: Final = frozenset({"queued", "processing", "completed"})
FINISHED: Final = tuple(sorted(s.value for s in TERMINAL))

JOB_COLUMNS: Final = (
    "job_id, tenant_id, doc_key, pipeline, status, stage, priority, attempts, error, metadata,"
    " outputs, created_at, updated_at, started_at, finished_at, lease_expires_at,"
    " next_attempt_at, stage_errors, stage_losses"
)

CREATE: Final = """
WITH ins AS (
    INSERT INTO jobs (job_id, tenant_id, doc_key, pipeline, status, priority, metadata,
                      created_at, updated_at)
    VALUES (%(job_id)s, %(tenant_id)s, %(doc_key)s, %(pipeline)s, 'queued', %(priority)s,
            %(metadata)s, now(), now())
    ON CONFLICT (tenant_id, doc_key) WHERE status IN ('queued', 'processing', 'completed')
    DO NOTHING
    RETURNING job_id, created_at
), event AS (
    INSERT INTO job_events (job_id, seq, kind, at, to_status, reason, attempts, data)
    SELECT job_id, 1, 'created', created_at, 'queued', 'create', 0, %(data)s FROM ins
), notified AS (
    SELECT pg_notify(%(channel)s, job_id || ':1') FROM ins
)
SELECT job_id, (SELECT count(*) FROM notified) FROM ins
"""

HOLDERS: Final = """
SELECT j.tenant_id, j.doc_key, j.job_id, j.status
FROM unnest(%s::text[], %s::text[]) AS d(tenant_id, doc_key)
JOIN jobs j ON j.tenant_id = d.tenant_id AND j.doc_key = d.doc_key
    AND j.status IN ('queued', 'processing', 'completed')
"""

TRANSITION: Final = """
WITH cur AS (
    SELECT status, attempts FROM jobs WHERE job_id = %(job_id)s
), moved AS (
    UPDATE jobs SET
        status = %(target)s,
        stage = coalesce(%(stage)s::text, stage),
        error = CASE %(error_mode)s::text WHEN 'set' THEN %(error)s::jsonb
                                          WHEN 'clear' THEN NULL ELSE error END,
        attempts = coalesce(%(attempts)s::integer, attempts + %(attempts_delta)s::integer),
        outputs = CASE WHEN %(output_stage)s::text IS NULL THEN outputs
                       ELSE outputs || jsonb_build_object(%(output_stage)s::text,
                                                          %(output)s::jsonb) END,
        updated_at = now(),
        started_at = CASE WHEN %(target)s = 'processing' THEN coalesce(started_at, now())
                          ELSE started_at END,
        finished_at = CASE WHEN %(terminal)s::boolean THEN now()
                           WHEN %(target)s = 'queued' THEN NULL ELSE finished_at END,
        lease_expires_at = CASE %(lease_mode)s::text
                               WHEN 'clear' THEN NULL
                               WHEN 'set' THEN now() + make_interval(secs => %(lease_s)s::float8)
                               ELSE lease_expires_at END,
        next_attempt_at = now() + make_interval(secs => %(retry_in_s)s::float8),
        stage_errors = coalesce(%(stage_errors)s::integer, stage_errors),
        stage_losses = coalesce(%(stage_losses)s::integer, stage_losses),
        event_seq = event_seq + 1
    WHERE job_id = %(job_id)s AND status = %(expected)s
      AND (%(expected_attempts)s::integer IS NULL OR attempts = %(expected_attempts)s::integer)
    RETURNING job_id, event_seq, attempts, updated_at
), event AS (
    INSERT INTO job_events (job_id, seq, kind, at, from_status, to_status, reason, stage,
                            attempts, error, data)
    SELECT job_id, event_seq, %(kind)s, updated_at, %(expected)s, %(target)s, %(reason)s::text,
           %(stage)s::text, attempts, %(error)s::jsonb, %(data)s::jsonb
    FROM moved
), outbox AS (
    INSERT INTO outbox (topic, key, value, event_id, headers)
    SELECT m.topic, m.key, m.value, m.event_id, m.headers
    FROM moved, unnest(%(m_topic)s::text[], %(m_key)s::text[], %(m_value)s::bytea[],
                       %(m_event_id)s::text[], %(m_headers)s::jsonb[])
         AS m(topic, key, value, event_id, headers)
), notified AS (
    SELECT pg_notify(%(channel)s, job_id || ':' || event_seq) FROM moved
)
SELECT m.event_seq, c.status, c.attempts, (SELECT count(*) FROM notified)
FROM cur c LEFT JOIN moved m ON true
"""

OUTBOX_PUT: Final = """
INSERT INTO outbox (topic, key, value, event_id, headers)
SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[], %s::jsonb[])
"""

# own entries, then others' entries unacknowledged for min_idle_s, then new ones; SKIP LOCKED
# hands an entry that another relay is claiming right now to nobody else
OUTBOX_CLAIM: Final = """
WITH own AS (
    SELECT id, 0 AS rank FROM outbox WHERE owner = %(consumer)s
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), stale AS (
    SELECT id, 1 AS rank FROM outbox
    WHERE owner IS NOT NULL AND owner <> %(consumer)s
      AND claimed_at <= now() - make_interval(secs => %(min_idle_s)s::float8)
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), fresh AS (
    SELECT id, 2 AS rank FROM outbox WHERE owner IS NULL
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id, rank FROM (SELECT * FROM own UNION ALL SELECT * FROM stale
                          UNION ALL SELECT * FROM fresh) AS u
    ORDER BY rank, id LIMIT %(limit)s
)
UPDATE outbox o SET owner = %(consumer)s, claimed_at = now(), deliveries = o.deliveries + 1
FROM picked WHERE o.id = picked.id
RETURNING picked.rank, o.id, o.topic, o.key, o.value, o.event_id, o.headers, o.deliveries
"""

HOLDER_OF: Final = """
SELECT h.job_id FROM jobs j
JOIN jobs h ON h.tenant_id = j.tenant_id AND h.doc_key = j.doc_key AND h.job_id <> j.job_id
    AND h.status IN ('queued', 'processing', 'completed')
WHERE j.job_id = %s
"""

GET_JOB: Final = """
SELECT job_id, tenant_id, doc_key, pipeline, status, stage, priority, attempts, error, metadata,
       outputs, created_at, updated_at, started_at, finished_at, lease_expires_at,
       next_attempt_at, stage_errors, stage_losses
FROM jobs WHERE job_id = ANY(%s::text[])
"""

GET_EVENTS: Final = """
SELECT seq, job_id, kind, at, from_status, to_status, reason, stage, attempts, error, data
FROM job_events WHERE job_id = %s AND seq > %s ORDER BY seq LIMIT %s
"""

PRUNE: Final = """
WITH doomed AS (
    SELECT job_id FROM jobs
    WHERE status = ANY(%(finished)s::text[]) AND finished_at < %(before)s
      AND (%(tenant_id)s::text IS NULL OR tenant_id = %(tenant_id)s::text)
      AND tenant_id <> ALL(%(exclude)s::text[])
    ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM doomed)
"""


def may_conflict(req: TransitionRequest) -> bool:
    """Only entering ``queued`` from a finished state can hit the live-document unique index."""
    return req.target is JobStatus.QUEUED and req.expected is not JobStatus.QUEUED


def outcome(req: TransitionRequest, row: tuple[Any, ...] | None) -> TransitionOutcome | LedgerError:
    """The result of one :data:`TRANSITION` row: applied, or why not (no row: no such job)."""
    if row is None:
        return JobNotFoundError(f"no job {req.job_id}", job_id=req.job_id)
    seq, status, attempts, _ = row
    if seq is not None:
        return TransitionOutcome(job_id=req.job_id, status=req.target, seq=int(seq))
    if status != req.expected.value:
        return StaleTransitionError(
            f"job {req.job_id} is {status}, not {req.expected.value}",
            job_id=req.job_id,
            actual_status=status,
        )
    if req.expected_attempts is not None and attempts != req.expected_attempts:
        return StaleTransitionError(
            f"job {req.job_id} is at attempt {attempts}, not {req.expected_attempts}",
            job_id=req.job_id,
            actual_status=status,
        )
    return StaleTransitionError(
        f"job {req.job_id} was moved by another writer at the same moment",
        job_id=req.job_id,
        actual_status=status,
    )


def create_params(job: NewJob, channel: str) -> dict[str, Any]:
    """Parameters of :data:`CREATE`."""
    return {
        "job_id": job.job_id,
        "tenant_id": job.tenant_id,
        "doc_key": job.doc_key,
        "pipeline": job.pipeline,
        "priority": job.priority,
        "metadata": _jsonb(job.metadata),
        "data": _jsonb({"pipeline": job.pipeline}),
        "channel": channel,
    }


def _modes(req: TransitionRequest) -> tuple[str, str]:
    if req.error is not None:
        error_mode = "set"
    elif req.target is JobStatus.QUEUED:
        error_mode = "clear"
    else:
        error_mode = "keep"
    if req.target.is_terminal or req.target is JobStatus.QUEUED or req.lease_s == 0:
        lease_mode = "clear"
    elif req.lease_s is not None:
        lease_mode = "set"
    else:
        lease_mode = "keep"
    return error_mode, lease_mode


def transition_params(req: TransitionRequest, channel: str) -> dict[str, Any]:
    """Parameters of :data:`TRANSITION` (raises IllegalTransitionError for an illegal move)."""
    reason = req.checked_reason()
    error_mode, lease_mode = _modes(req)
    messages = req.messages
    return {
        "job_id": req.job_id,
        "expected": req.expected.value,
        "target": req.target.value,
        "expected_attempts": req.expected_attempts,
        "stage": req.stage or None,
        "error_mode": error_mode,
        "error": _jsonb(req.error.model_dump()) if req.error is not None else None,
        "attempts": req.attempts,
        "attempts_delta": req.attempts_delta,
        "output_stage": req.output_stage,
        "output": _jsonb(req.output or {}),
        "terminal": req.target.is_terminal,
        "lease_mode": lease_mode,
        "lease_s": req.lease_s,
        "retry_in_s": req.retry_in_s,
        "stage_errors": req.stage_errors,
        "stage_losses": req.stage_losses,
        "kind": req.kind,
        "reason": reason.value if reason else None,
        "data": _jsonb(req.data),
        "m_topic": [m.topic for m in messages],
        "m_key": [m.key for m in messages],
        "m_value": [m.value for m in messages],
        "m_event_id": [m.event_id for m in messages],
        "m_headers": [_jsonb([list(h) for h in m.headers]) for m in messages],
        "channel": channel,
    }


def outbox_columns(messages: list[OutboxMessage] | tuple[OutboxMessage, ...]) -> tuple[Any, ...]:
    """The five arrays of :data:`OUTBOX_PUT`."""
    return (
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        [m.event_id for m in messages],
        [_jsonb([list(h) for h in m.headers]) for m in messages],
    )


def outbox_entry(row: tuple[Any, ...]) -> OutboxEntry:
    """An entry from a row of :data:`OUTBOX_CLAIM` (after its rank)."""
    _, entry_id, topic, key, value, event_id, headers, deliveries = row
    message = OutboxMessage(
        topic=topic,
        key=key,
        value=bytes(value),
        event_id=event_id,
        headers=tuple((str(k), str(v)) for k, v in headers),
    )
    return OutboxEntry(str(entry_id), message, int(deliveries))


def job_from_row(row: dict[str, Any], history: list[JobEvent] | None = None) -> Job:
    """A :class:`Job` from a jobs row (a dict)."""
    error = row["error"]
    return Job(
        **{k: v for k, v in row.items() if k not in ("error", "status")},
        status=JobStatus(row["status"]),
        error=JobError.model_validate(error) if error else None,
        history=history or [],
    )


def event_from_row(row: dict[str, Any]) -> JobEvent:
    """A :class:`JobEvent` from a job_events row (a dict)."""
    return JobEvent.model_validate(row)
