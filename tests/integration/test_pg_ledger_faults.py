"""PostgreSQL killed with SIGKILL in the middle of a stream of transitions, then restarted on
the same data directory: the same ledger object reconnects by itself, every transition that was
acknowledged is there, and none was applied twice (each is a compare-and-set on the attempt)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg import sql

from ingest_ray.errors import ServiceUnavailableError, StackError, StaleTransitionError
from ingest_ray.index.pgstack import TempPostgres
from ingest_ray.ledger import NewJob, OutboxMessage, TransitionRequest
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.ports import free_port
from ingest_ray.states import JobStatus
from tests.conftest import in_ci

P = JobStatus.PROCESSING
JOBS, STEPS = 4, 60


@pytest.fixture
def durable_pg() -> Iterator[TempPostgres]:
    """A cluster of this test's own with PostgreSQL's durable defaults (fsync, synchronous
    commit), so a crash loses only what was never acknowledged."""
    cluster = TempPostgres(extensions=(), durable=True)
    try:
        cluster.start()
    except StackError as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL unavailable under CI=true: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Writer:
    """Moves every job through STEPS stage updates, riding out the outage."""

    ledger: PostgresLedger
    job_ids: list[str]
    acked: list[tuple[str, int]] = field(default_factory=list)
    unavailable: int = 0
    confirmed_after_doubt: int = 0
    error: BaseException | None = None

    def request(self, job_id: str, step: int) -> TransitionRequest:
        message = OutboxMessage("t.results", job_id, b"v", f"{job_id}:{step}")
        return TransitionRequest(
            job_id, P, P, stage=f"s{step}", expected_attempts=step, attempts=step + 1,
            messages=(message,),
        )  # fmt: skip

    def apply(self, job_id: str, step: int) -> None:
        doubt = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                self.acked.append((job_id, self.ledger.transition(self.request(job_id, step)).seq))
                return
            except ServiceUnavailableError:
                self.unavailable += 1
                doubt = True  # the commit may or may not have happened
                time.sleep(0.05)
            except StaleTransitionError:
                if not doubt or self.ledger.get(job_id).attempts != step + 1:
                    raise
                self.confirmed_after_doubt += 1  # it had committed: do not apply it again
                return
        raise AssertionError(f"{job_id} step {step} never went through")

    def run(self) -> None:
        try:
            for step in range(1, STEPS + 1):
                for job_id in self.job_ids:
                    self.apply(job_id, step)
        except BaseException as exc:
            self.error = exc


def test_pg_ledger_survives_kill_9_of_the_postmaster(durable_pg: TempPostgres) -> None:
    ledger = PostgresLedger(
        durable_pg.dsn, schema="chaos", connect_timeout_s=2, statement_timeout_s=10
    )
    job_ids = [ledger.create(NewJob("t", f"doc:{i}", "auto")).job_id for i in range(JOBS)]
    for job_id in job_ids:
        ledger.transition(TransitionRequest(job_id, JobStatus.QUEUED, P, stage="s0", attempts=1))
    writer = Writer(ledger, job_ids)
    thread = threading.Thread(target=writer.run)
    thread.start()
    deadline = time.monotonic() + 60
    while len(writer.acked) < JOBS * STEPS // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    durable_pg.kill()
    time.sleep(1.0)
    durable_pg.restart()
    thread.join(timeout=180)
    assert not thread.is_alive()
    assert writer.error is None, writer.error
    assert writer.unavailable > 0  # the outage was felt, and ridden out

    for job_id in job_ids:
        job = ledger.get(job_id)
        stage_events = [e for e in job.history if e.kind == "stage"]
        assert [e.stage for e in stage_events] == [f"s{s}" for s in range(1, STEPS + 1)]
        assert [e.attempts for e in stage_events] == list(range(2, STEPS + 2))
        assert [e.seq for e in job.history] == list(range(1, STEPS + 3))
        assert job.attempts == STEPS + 1
    seqs = {(e.job_id, e.seq) for j in job_ids for e in ledger.events(j, count=1000)}
    assert set(writer.acked) <= seqs  # every acknowledged transition survived the crash
    entries = ledger.outbox_claim("relay", limit=10_000)
    event_ids = [e.message.event_id for e in entries]
    assert len(event_ids) == len(set(event_ids)) == JOBS * STEPS  # each message exactly once
    assert ledger.ping()
    ledger.close()


def test_pg_ledger_calls_fail_fast_and_typed_when_postgres_is_away() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    ledger = PostgresLedger(dsn, schema="away", connect_timeout_s=1)
    with pytest.raises(ServiceUnavailableError):
        ledger.create(NewJob("t", "d", "auto"))
    with pytest.raises(ServiceUnavailableError):
        ledger.counts()
    ledger.close()


def test_pg_ledger_statement_timeout_turns_a_stuck_call_into_a_retryable_error(
    pg_ledger_dsn: str, pg_schema: str
) -> None:
    ledger = PostgresLedger(pg_ledger_dsn, schema=pg_schema, statement_timeout_s=0.5)
    job_id = ledger.create(NewJob("t", "d", "auto")).job_id
    with psycopg.connect(pg_ledger_dsn) as blocker:  # holds the job's row lock, uncommitted
        blocker.execute(
            sql.SQL("SELECT 1 FROM {}.jobs WHERE job_id = %s FOR UPDATE").format(
                sql.Identifier(pg_schema)
            ),
            (job_id,),
        )
        with pytest.raises(ServiceUnavailableError, match="statement timeout"):
            ledger.transition(TransitionRequest(job_id, JobStatus.QUEUED, P))
        blocker.rollback()
    assert ledger.transition(TransitionRequest(job_id, JobStatus.QUEUED, P)).seq == 2
    ledger.close()
