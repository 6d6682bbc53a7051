"""The API's PostgreSQL event reader: heads, events from a seq, and NOTIFY wake-ups."""

from __future__ import annotations

import asyncio
import threading

from ingest_ray.ledger import NewJob, TransitionRequest
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.ports import free_port
from ingest_ray.states import JobStatus
from serve_app.streams_pg import PgEventReader

Q, P, C = JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED


def test_pg_reader_reads_heads_and_events_after_a_seq(
    pg_ledger: PostgresLedger, pg_ledger_dsn: str, pg_schema: str
) -> None:
    job_id = pg_ledger.create(NewJob("t1", "doc:1", "auto")).job_id
    pg_ledger.transition(TransitionRequest(job_id, Q, P, stage="metadata"))
    pg_ledger.transition(TransitionRequest(job_id, P, C))

    async def read() -> tuple[object, object, list[int], list[int]]:
        reader = PgEventReader(pg_ledger_dsn, pg_schema)
        try:
            head = await reader.head(job_id)
            missing = await reader.head("nope")
            all_ = [e.seq for e in await reader.after(job_id, 0)]
            tail = [e.seq for e in await reader.after(job_id, 2)]
        finally:
            await reader.aclose()
        return head, missing, all_, tail

    head, missing, all_, tail = asyncio.run(read())
    assert head == ("t1", C)
    assert missing is None
    assert (all_, tail) == ([1, 2, 3], [3])


def test_pg_reader_wait_is_woken_by_the_transition_notify(
    pg_ledger: PostgresLedger, pg_ledger_dsn: str, pg_schema: str
) -> None:
    job_id = pg_ledger.create(NewJob("t1", "doc:1", "auto")).job_id

    async def follow() -> tuple[bool, bool, bool, list[int]]:
        reader = PgEventReader(pg_ledger_dsn, pg_schema, poll_s=0.05)
        try:
            for _ in range(200):  # the listener connects in the background; waits poll until then
                if reader.listening:
                    break
                await reader.wait(job_id, 1, 1)
            assert reader.listening
            quiet = await reader.wait(job_id, 1, 0.3)  # nothing new: times out
            already = await reader.wait(job_id, 0, 30)  # seq 1 exists: at once
            mover = threading.Timer(
                0.3, pg_ledger.transition, (TransitionRequest(job_id, Q, P, stage="a"),)
            )
            mover.start()
            woken = await reader.wait(job_id, 1, 60)  # False only after 60 s without NOTIFY
            mover.join()
            seqs = [e.seq for e in await reader.after(job_id, 1)]
        finally:
            await reader.aclose()
        return quiet, already, woken, seqs

    quiet, already, woken, seqs = asyncio.run(follow())
    assert (quiet, already, woken) == (False, True, True)
    assert seqs == [2]


def test_pg_reader_wait_polls_while_postgres_is_away() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"

    async def follow() -> list[bool]:
        reader = PgEventReader(dsn, "nowhere", poll_s=0.05, connect_timeout_s=1)
        try:
            return [await reader.wait("job", 0, 60) for _ in range(3)]
        finally:
            await reader.aclose()

    assert asyncio.run(follow()) == [True, True, True]  # nothing to listen to: polls
