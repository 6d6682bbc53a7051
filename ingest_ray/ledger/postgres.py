"""PostgreSQL ledger backend: compare-and-set transitions in SQL, events and outbox in the same
transaction, ``NOTIFY`` for live followers.

Tables (``ledger/migrations/0001_init.sql``, in the configured schema): ``jobs`` (one row per
job; a partial unique index on (tenant_id, doc_key) over live and completed jobs is the
idempotency key), ``job_events`` (history and event stream, ``(job_id, seq)``) and ``outbox``.
Every transition commits a ``NOTIFY`` on :attr:`PostgresLedger.channel` with the payload
``{job_id}:{seq}``; ``serve_app/streams_pg.py`` listens to it.

Connections come from a psycopg pool in autocommit mode (a single-statement write is its own
transaction; batches run in one explicit transaction, pipelined into one round trip). Every
connection has a connect timeout, TCP keepalives and a statement timeout, so no call hangs; a
failed call raises :class:`ServiceUnavailableError` (retryable) and the pool replaces dead
connections by itself once PostgreSQL is back. Reads are retried once on a fresh connection;
writes never are (the caller's compare-and-set makes its own retry safe).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ingest_ray.errors import (
    DamagedRecordError,
    IllegalTransitionError,
    JobNotFoundError,
    LedgerError,
    ServiceUnavailableError,
    StaleTransitionError,
)
from ingest_ray.ledger import migrate as migrations
from ingest_ray.ledger import pg_reads as reads
from ingest_ray.ledger import pg_sql as q
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
from ingest_ray.states import JobStatus

MAX_PAGE = 1000
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_CREATE_TRIES = 10
T = TypeVar("T")
Conn = psycopg.Connection[Any]
TransitionResult = TransitionOutcome | LedgerError


class PostgresLedger:
    """The PostgreSQL implementation of :class:`ingest_ray.ledger.base.Ledger`."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "ingest_ray",
        pool_max: int = 8,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 30.0,
        auto_migrate: bool = True,
    ) -> None:
        if not _SCHEMA.match(schema):
            raise ValueError(f"invalid ledger schema name {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self.channel = f"{schema}_events"
        self.connect_timeout_s = connect_timeout_s
        self._auto_migrate = auto_migrate
        self._ready = False
        self._ready_lock = threading.Lock()
        options = (
            f"-c search_path={schema} -c TimeZone=UTC"
            f" -c statement_timeout={int(statement_timeout_s * 1000)}"
            f" -c idle_in_transaction_session_timeout={int(statement_timeout_s * 2000)}"
        )
        self._pool = ConnectionPool(
            dsn,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(connect_timeout_s)),
                "options": options,
                "application_name": "ingest-ray-ledger",
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
            min_size=1,
            max_size=pool_max,
            timeout=2 * connect_timeout_s,
            reconnect_timeout=max(30.0, 6 * connect_timeout_s),
            num_workers=2,
            open=False,
            name=f"ledger-{schema}",
        )
        self._pool.open(wait=False)

    @classmethod
    def from_settings(cls, settings: Any) -> PostgresLedger:
        """Build from :class:`ingest_ray.config.Settings`."""
        return cls(
            settings.postgres_dsn,
            schema=settings.postgres_ledger_schema,
            pool_max=settings.postgres_pool_max,
            connect_timeout_s=settings.postgres_connect_timeout_s,
            statement_timeout_s=settings.postgres_statement_timeout_s,
            auto_migrate=settings.postgres_auto_migrate,
        )

    # --- connections --------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            try:
                if self._auto_migrate:
                    migrations.migrate(
                        self.dsn, self.schema, connect_timeout_s=self.connect_timeout_s
                    )
                else:
                    migrations.check_current(
                        self.dsn, self.schema, connect_timeout_s=self.connect_timeout_s
                    )
            except psycopg.OperationalError as exc:
                raise ServiceUnavailableError(f"PostgreSQL ledger unavailable: {exc}") from exc
            self._ready = True

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        self._ensure_schema()
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_dead_connections()
            raise ServiceUnavailableError(f"PostgreSQL ledger unavailable: {exc}") from exc

    def _drop_dead_connections(self) -> None:
        # after a server restart every idle connection is dead; find them now, not one per call
        with suppress(psycopg.Error):
            self._pool.check()

    def _read(self, fn: Callable[[Conn], T]) -> T:
        """Run a read, once more on a fresh connection if the first one was dead."""
        try:
            with self._connection() as conn:
                return fn(conn)
        except ServiceUnavailableError:
            with self._connection() as conn:
                return fn(conn)

    # --- create -------------------------------------------------------------------------------

    def create(self, job: NewJob) -> CreateOutcome:
        """Create a job, or return the live/completed one already held for its document."""
        with self._connection() as conn:
            for _ in range(_CREATE_TRIES):
                if conn.execute(q.CREATE, q.create_params(job, self.channel)).fetchone():
                    return CreateOutcome(job.job_id, created=True, status=JobStatus.QUEUED)
                holder = self._holders(conn, [job]).get((job.tenant_id, job.doc_key))
                if holder is not None:  # else the holder finished just now: insert again
                    return holder
        raise StaleTransitionError(f"document {job.doc_key} kept changing", job_id=job.job_id)

    def create_many(self, jobs: Sequence[NewJob]) -> list[CreateOutcome | LedgerError]:
        """Create many jobs in one transaction, pipelined into one round trip (a document whose
        holder kept changing comes back as its own :class:`StaleTransitionError`). A job
        PostgreSQL cannot store aborts that transaction: the jobs are then created one by one,
        and only that one comes back as a :class:`DamagedRecordError`."""
        if not jobs:
            return []
        params = [q.create_params(j, self.channel) for j in jobs]
        try:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                cur.executemany(q.CREATE, params, returning=True)
                created = set()
                while True:
                    row = cur.fetchone()
                    if row is not None:
                        created.add(row[0])
                    if not cur.nextset():
                        break
                holders = self._holders(conn, [j for j in jobs if j.job_id not in created])
        except psycopg.DataError:
            return [self._create_alone(job) for job in jobs]
        outcomes: list[CreateOutcome | LedgerError] = []
        for job in jobs:
            if job.job_id in created:
                outcomes.append(CreateOutcome(job.job_id, created=True, status=JobStatus.QUEUED))
            elif (found := holders.get((job.tenant_id, job.doc_key))) is not None:
                outcomes.append(found)
            else:  # the holder finished between the insert and the look-up
                outcomes.append(self._create_alone(job))
        return outcomes

    def _create_alone(self, job: NewJob) -> CreateOutcome | LedgerError:
        """:meth:`create`, its refusal as a value."""
        try:
            return self.create(job)
        except psycopg.DataError as exc:
            return DamagedRecordError(
                f"create of {job.job_id}: PostgreSQL cannot store it: {exc}", job_id=job.job_id
            )
        except LedgerError as exc:
            return exc

    @staticmethod
    def _holders(conn: Conn, jobs: Sequence[NewJob]) -> dict[tuple[str, str], CreateOutcome]:
        if not jobs:
            return {}
        rows = conn.execute(
            q.HOLDERS, ([j.tenant_id for j in jobs], [j.doc_key for j in jobs])
        ).fetchall()
        return {
            (t, d): CreateOutcome(job_id, created=False, status=JobStatus(s))
            for t, d, job_id, s in rows
        }

    # --- transitions --------------------------------------------------------------------------

    def transition(self, request: TransitionRequest) -> TransitionOutcome:
        """Apply one transition (one statement); raise a typed error when refused."""
        params = q.transition_params(request, self.channel)
        with self._connection() as conn:
            if q.may_conflict(request):
                result = self._guarded(conn, request, params)
            else:
                result = q.outcome(request, conn.execute(q.TRANSITION, params).fetchone())
        if isinstance(result, LedgerError):
            raise result
        return result

    def transition_many(self, requests: Sequence[TransitionRequest]) -> list[TransitionResult]:
        """Apply many transitions in order, in one transaction (pipelined); refusals come back
        as error values and do not undo the others. A write PostgreSQL cannot store (a value
        it refuses) aborts that transaction, so the batch is applied again one by one, each
        under its own savepoint, and only the bad one comes back as a
        :class:`DamagedRecordError`."""
        results: list[TransitionResult | None] = [None] * len(requests)
        plain: list[tuple[int, dict[str, Any]]] = []
        guarded: list[tuple[int, dict[str, Any]]] = []
        for i, req in enumerate(requests):
            try:
                params = q.transition_params(req, self.channel)
            except IllegalTransitionError as exc:
                results[i] = exc
                continue
            (guarded if q.may_conflict(req) else plain).append((i, params))
        if plain or guarded:
            try:
                with self._connection() as conn, conn.transaction():
                    self._apply_in_order(conn, requests, plain, guarded, results)
            except psycopg.DataError:
                with self._connection() as conn, conn.transaction():
                    for i, params in sorted(plain + guarded, key=lambda item: item[0]):
                        results[i] = self._guarded(conn, requests[i], params)
        return [r for r in results if r is not None]

    def _apply_in_order(
        self,
        conn: Conn,
        requests: Sequence[TransitionRequest],
        plain: list[tuple[int, dict[str, Any]]],
        guarded: list[tuple[int, dict[str, Any]]],
        results: list[TransitionResult | None],
    ) -> None:
        # runs of plain requests go out as one pipelined executemany; a request that may hit
        # the unique index runs alone under a savepoint, between the runs, in input order
        pending = sorted(
            [(i, p, False) for i, p in plain] + [(i, p, True) for i, p in guarded],
            key=lambda item: item[0],
        )
        run: list[tuple[int, dict[str, Any]]] = []
        for i, params, is_guarded in [*pending, (-1, {}, True)]:
            if not is_guarded:
                run.append((i, params))
                continue
            if run:
                self._execute_run(conn, requests, run, results)
                run = []
            if i >= 0:
                results[i] = self._guarded(conn, requests[i], params)

    @staticmethod
    def _execute_run(
        conn: Conn,
        requests: Sequence[TransitionRequest],
        run: list[tuple[int, dict[str, Any]]],
        results: list[TransitionResult | None],
    ) -> None:
        with conn.cursor() as cur:
            cur.executemany(q.TRANSITION, [p for _, p in run], returning=True)
            for i, _ in run:
                results[i] = q.outcome(requests[i], cur.fetchone())
                cur.nextset()

    @staticmethod
    def _guarded(conn: Conn, req: TransitionRequest, params: dict[str, Any]) -> TransitionResult:
        """One transition under a savepoint: a unique-index hit or a value PostgreSQL cannot
        store is this request's refusal, and the transaction goes on."""
        try:
            with conn.transaction():
                row = conn.execute(q.TRANSITION, params).fetchone()
        except psycopg.DataError as exc:
            return DamagedRecordError(
                f"transition of {req.job_id}: PostgreSQL cannot store it: {exc}", job_id=req.job_id
            )
        except pg_errors.UniqueViolation:
            holder = conn.execute(q.HOLDER_OF, (req.job_id,)).fetchone()
            other = holder[0] if holder else "another job"
            return IllegalTransitionError(
                f"job {other} already holds this document; {req.job_id} cannot be re-queued",
                job_id=req.job_id,
            )
        return q.outcome(req, row)

    # --- reads --------------------------------------------------------------------------------

    def get(self, job_id: str, *, tenant_id: str | None = None) -> Job:
        """The job and its full history; another tenant's job is reported as not found."""
        job = self._read(lambda conn: reads.job_with_history(conn, job_id))
        if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
            raise JobNotFoundError(f"no job {job_id}", job_id=job_id)
        return job

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Jobs without history, in input order, ``None`` where missing (one round trip)."""
        found = self._read(lambda conn: reads.jobs_by_id(conn, job_ids)) if job_ids else {}
        return [found.get(job_id) for job_id in job_ids]

    def list_jobs(self, flt: JobFilter, *, cursor: str | None = None, limit: int = 50) -> Page:
        """Jobs matching ``flt``, newest first, by keyset pagination on the job id."""
        limit = max(1, min(limit, MAX_PAGE))
        items = self._read(lambda conn: reads.page(conn, flt, cursor, limit + 1))
        if len(items) > limit:
            return Page(items=items[:limit], next_cursor=items[limit - 1].job_id)
        return Page(items=items, next_cursor=None)

    def counts(self, *, tenant_id: str | None = None) -> dict[JobStatus, int]:
        """Jobs per status (an index scan of ``jobs_status`` / ``jobs_tenant_status``)."""
        return self._read(lambda conn: reads.counts(conn, tenant_id))

    def expired_leases(self, *, now: datetime | None = None, limit: int = 100) -> list[str]:
        """Ids of jobs whose lease expired before ``now`` (the server's clock by default)."""
        return self._read(lambda conn: reads.expired(conn, now, limit))

    def queued_groups(self) -> list[QueuedGroup]:
        """Queued jobs per (tenant, priority) (an index-only scan of ``jobs_queued_fair``)."""
        return self._read(reads.queued_groups)

    def queued_ids(
        self, tenant_id: str, priority: int, *, after: str | None = None, limit: int = 100
    ) -> list[str]:
        """Queued ids of one (tenant, priority), oldest first."""
        bounded = max(1, min(limit, MAX_PAGE))
        return self._read(lambda conn: reads.queued_ids(conn, tenant_id, priority, after, bounded))

    def events(self, job_id: str, *, after: int = 0, count: int = 100) -> list[JobEvent]:
        """Events with ``seq > after``, oldest first (every event is kept until pruned)."""
        return self._read(lambda conn: reads.events(conn, job_id, after, count))

    # --- the outbox ---------------------------------------------------------------------------

    def outbox_put(self, messages: Sequence[OutboxMessage]) -> None:
        """Record messages that follow no transition, in one statement."""
        if messages:
            with self._connection() as conn:
                conn.execute(q.OUTBOX_PUT, q.outbox_columns(tuple(messages)))

    def outbox_claim(
        self, consumer: str, *, limit: int = 500, min_idle_s: float = 60.0
    ) -> list[OutboxEntry]:
        """Own unacknowledged entries first, then others' stale ones, then new ones."""
        params = {"consumer": consumer, "limit": limit, "min_idle_s": min_idle_s}
        with self._connection() as conn:
            rows = conn.execute(q.OUTBOX_CLAIM, params).fetchall()
        return [q.outbox_entry(r) for r in sorted(rows, key=lambda r: (r[0], r[1]))]

    def outbox_ack(self, entry_ids: Sequence[str]) -> None:
        """Delete published entries."""
        ids = [int(e) for e in entry_ids if e.isdigit()]
        if ids:
            with self._connection() as conn:
                conn.execute("DELETE FROM outbox WHERE id = ANY(%s::bigint[])", (ids,))

    def outbox_depth(self) -> int:
        """Entries not yet acknowledged."""
        row = self._read(lambda conn: conn.execute("SELECT count(*) FROM outbox").fetchone())
        return int(row[0]) if row else 0

    # --- retention and housekeeping -----------------------------------------------------------

    def prune(
        self,
        before: datetime,
        *,
        tenant_id: str | None = None,
        exclude_tenants: Sequence[str] = (),
        batch: int = 1000,
    ) -> int:
        """Delete finished jobs that finished before ``before``, with their events (cascade);
        their idempotency key and lease go with the row. Answers how many were deleted."""
        params = {
            "finished": list(q.FINISHED), "before": before, "tenant_id": tenant_id,
            "exclude": list(exclude_tenants), "limit": batch,
        }  # fmt: skip
        deleted = 0
        while True:
            with self._connection() as conn:
                n = conn.execute(q.PRUNE, params).rowcount
            deleted += n
            if n < batch:
                return deleted

    def ping(self) -> bool:
        """Whether PostgreSQL answers."""
        return bool(self._read(lambda conn: conn.execute("SELECT 1").fetchone()))

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()
