"""The PostgreSQL ledger's reads, each a function of a connection (the ledger adds retries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ingest_ray.ledger import pg_sql as q
from ingest_ray.ledger.base import Job, JobEvent, JobFilter, QueuedGroup
from ingest_ray.states import JobStatus

Conn = psycopg.Connection[Any]


def job_with_history(conn: Conn, job_id: str) -> Job | None:
    """The job and every event of it, in one round trip."""
    with conn.pipeline():
        jobs = conn.cursor(row_factory=dict_row).execute(q.GET_JOB, ([job_id],))
        events = conn.cursor(row_factory=dict_row).execute(q.GET_EVENTS, (job_id, 0, None))
    row = jobs.fetchone()
    if row is None:
        return None
    return q.job_from_row(row, [q.event_from_row(e) for e in events.fetchall()])


def jobs_by_id(conn: Conn, job_ids: Sequence[str]) -> dict[str, Job]:
    """Jobs without history, by id."""
    rows = conn.cursor(row_factory=dict_row).execute(q.GET_JOB, (list(job_ids),)).fetchall()
    return {r["job_id"]: q.job_from_row(r) for r in rows}


def page(conn: Conn, flt: JobFilter, cursor: str | None, limit: int) -> list[Job]:
    """Up to ``limit`` matching jobs with ids below ``cursor``, newest first (keyset)."""
    where, params = _where(flt, cursor)
    query = sql.SQL("SELECT {} FROM jobs WHERE {} ORDER BY job_id DESC LIMIT %s").format(
        sql.SQL(q.JOB_COLUMNS), where
    )
    rows = conn.cursor(row_factory=dict_row).execute(query, [*params, limit]).fetchall()
    return [q.job_from_row(r) for r in rows]


def counts(conn: Conn, tenant_id: str | None) -> dict[JobStatus, int]:
    """Jobs per status."""
    if tenant_id is None:
        rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
    else:
        rows = conn.execute(
            "SELECT status, count(*) FROM jobs WHERE tenant_id = %s GROUP BY status",
            (tenant_id,),
        ).fetchall()
    out = dict.fromkeys(JobStatus, 0)
    for status, n in rows:
        out[JobStatus(status)] = int(n)
    return out


def expired(conn: Conn, now: datetime | None, limit: int) -> list[str]:
    """Ids of jobs whose lease ran out by ``now`` (the server's clock when None)."""
    rows = conn.execute(
        "SELECT job_id FROM jobs WHERE lease_expires_at <= coalesce(%s, now())"
        " ORDER BY lease_expires_at, job_id LIMIT %s",
        (now, limit),
    ).fetchall()
    return [r[0] for r in rows]


def queued_groups(conn: Conn) -> list[QueuedGroup]:
    """Queued jobs per (tenant, priority), from the partial index ``jobs_queued_fair``."""
    rows = conn.execute(
        "SELECT tenant_id, priority, count(*), min(job_id) FROM jobs WHERE status = 'queued'"
        " GROUP BY tenant_id, priority ORDER BY tenant_id, priority"
    ).fetchall()
    return [QueuedGroup(t, int(p), int(n), oldest) for t, p, n, oldest in rows]


def queued_ids(
    conn: Conn, tenant_id: str, priority: int, after: str | None, limit: int
) -> list[str]:
    """Queued ids of one (tenant, priority), oldest first, above ``after`` (keyset)."""
    rows = conn.execute(
        "SELECT job_id FROM jobs WHERE status = 'queued' AND tenant_id = %s AND priority = %s"
        " AND (%s::text IS NULL OR job_id > %s::text) ORDER BY job_id LIMIT %s",
        (tenant_id, priority, after, after, limit),
    ).fetchall()
    return [r[0] for r in rows]


def events(conn: Conn, job_id: str, after: int, count: int) -> list[JobEvent]:
    """Events with ``seq > after``, oldest first."""
    rows = conn.cursor(row_factory=dict_row).execute(q.GET_EVENTS, (job_id, after, count))
    return [q.event_from_row(r) for r in rows.fetchall()]


def _where(flt: JobFilter, cursor: str | None) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (
        ("tenant_id", flt.tenant_id),
        ("status", flt.status.value if flt.status is not None else None),
        ("stage", flt.stage),
        ("pipeline", flt.pipeline),
        ("doc_key", flt.doc_key),
    ):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    ranges: tuple[tuple[str, Any], ...] = (
        ("created_at >= %s", flt.created_after),
        ("created_at <= %s", flt.created_before),
        ("job_id < %s", cursor),
    )
    for text, bound in ranges:
        if bound is not None:
            clauses.append(sql.SQL(text))
            params.append(bound)
    where = sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")
    return where, params
