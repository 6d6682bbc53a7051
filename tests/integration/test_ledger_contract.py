"""The ledger contract, run against every backend: the in-memory fake, real Redis and real
PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from ingest_ray.errors import (
    DamagedRecordError,
    IllegalTransitionError,
    JobNotFoundError,
    StaleTransitionError,
)
from ingest_ray.ledger import (
    CreateOutcome,
    JobError,
    JobFilter,
    Ledger,
    NewJob,
    OutboxMessage,
    TransitionOutcome,
    TransitionRequest,
)
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.states import TRANSITIONS, JobStatus
from ingest_ray.testing import InMemoryLedger

S = JobStatus


@pytest.fixture(params=["memory", "redis", "postgres"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    if request.param == "memory":
        yield InMemoryLedger()
    else:
        yield request.getfixturevalue(
            {"redis": "redis_ledger", "postgres": "pg_ledger"}[request.param]
        )


def _new(ledger: Ledger, doc: str = "doc:1", tenant: str = "t1", **kw: object) -> str:
    return ledger.create(NewJob(tenant_id=tenant, doc_key=doc, pipeline="auto", **kw)).job_id  # type: ignore[arg-type]


def _move(ledger: Ledger, job_id: str, src: S, dst: S, **kw: object) -> None:
    ledger.transition(TransitionRequest(job_id, src, dst, **kw))  # type: ignore[arg-type]


# a path from queued to each status through legal transitions
PATHS = {
    S.QUEUED: [],
    S.PROCESSING: [(S.QUEUED, S.PROCESSING)],
    S.COMPLETED: [(S.QUEUED, S.PROCESSING), (S.PROCESSING, S.COMPLETED)],
    S.FAILED: [(S.QUEUED, S.PROCESSING), (S.PROCESSING, S.FAILED)],
    S.CANCELLED: [(S.QUEUED, S.CANCELLED)],
}


def _job_in(ledger: Ledger, status: S, doc: str) -> str:
    job_id = _new(ledger, doc)
    for src, dst in PATHS[status]:
        _move(ledger, job_id, src, dst)
    return job_id


@pytest.mark.parametrize(("src", "dst"), sorted(TRANSITIONS))
def test_ledger_applies_every_legal_transition(ledger: Ledger, src: S, dst: S) -> None:
    job_id = _job_in(ledger, src, "doc:legal")
    _move(ledger, job_id, src, dst)
    job = ledger.get(job_id)
    assert job.status is dst
    assert job.history[-1].from_status is src
    assert job.history[-1].to_status is dst
    assert (job.finished_at is not None) == dst.is_terminal


ILLEGAL = [(a, b) for a in S for b in S if (a, b) not in TRANSITIONS and a is not b]


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_ledger_rejects_every_illegal_transition(ledger: Ledger, src: S, dst: S) -> None:
    job_id = _job_in(ledger, src, "doc:illegal")
    before = ledger.get(job_id)
    with pytest.raises(IllegalTransitionError):
        _move(ledger, job_id, src, dst)
    after = ledger.get(job_id)
    assert after.status is src
    assert len(after.history) == len(before.history)


def test_ledger_rejects_stale_compare_and_set(ledger: Ledger) -> None:
    job_id = _new(ledger)
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, attempts_delta=1)
    with pytest.raises(StaleTransitionError) as info:
        _move(ledger, job_id, S.QUEUED, S.CANCELLED)
    assert info.value.actual_status == "processing"
    with pytest.raises(StaleTransitionError, match="attempt"):
        _move(ledger, job_id, S.PROCESSING, S.COMPLETED, expected_attempts=0)
    _move(ledger, job_id, S.PROCESSING, S.COMPLETED, expected_attempts=1)
    with pytest.raises(JobNotFoundError):
        _move(ledger, "nope", S.QUEUED, S.PROCESSING)


def test_stage_updates_only_while_processing(ledger: Ledger) -> None:
    job_id = _new(ledger)
    with pytest.raises(IllegalTransitionError):
        _move(ledger, job_id, S.QUEUED, S.QUEUED, stage="metadata")
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, stage="metadata", attempts_delta=1)
    _move(ledger, job_id, S.PROCESSING, S.PROCESSING, stage="chunk", data={"chunks": 3})
    job = ledger.get(job_id)
    assert job.stage == "chunk"
    assert [e.kind for e in job.history] == ["created", "transition", "stage"]
    assert job.history[-1].data == {"chunks": 3}
    assert ledger.list_jobs(JobFilter(stage="chunk")).items[0].job_id == job_id
    assert ledger.list_jobs(JobFilter(stage="metadata")).items == []


def test_create_is_idempotent_per_tenant_and_doc(ledger: Ledger) -> None:
    first = ledger.create(NewJob("t1", "doc:x", "auto"))
    again = ledger.create(NewJob("t1", "doc:x", "two_phase"))
    other_tenant = ledger.create(NewJob("t2", "doc:x", "auto"))
    assert first.created and not again.created
    assert again.job_id == first.job_id
    assert other_tenant.created and other_tenant.job_id != first.job_id
    _move(ledger, first.job_id, S.QUEUED, S.PROCESSING)
    _move(ledger, first.job_id, S.PROCESSING, S.COMPLETED)
    assert ledger.create(NewJob("t1", "doc:x", "auto")).job_id == first.job_id


def test_failed_or_cancelled_doc_gets_a_new_job_and_blocks_the_old_retry(ledger: Ledger) -> None:
    old = _job_in(ledger, S.FAILED, "doc:y")
    new = ledger.create(NewJob("t1", "doc:y", "auto"))
    assert new.created and new.job_id != old
    with pytest.raises(IllegalTransitionError, match="already holds"):
        _move(ledger, old, S.FAILED, S.QUEUED)
    _move(ledger, new.job_id, S.QUEUED, S.CANCELLED)
    _move(ledger, old, S.FAILED, S.QUEUED)
    assert ledger.create(NewJob("t1", "doc:y", "auto")).job_id == old


def test_retry_clears_error_and_finish_time(ledger: Ledger) -> None:
    job_id = _new(ledger)
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, attempts_delta=1, lease_s=30)
    error = JobError(type="Boom", message="it broke", stage="embed")
    _move(ledger, job_id, S.PROCESSING, S.FAILED, error=error)
    failed = ledger.get(job_id)
    assert failed.error == error
    assert failed.lease_expires_at is None
    _move(ledger, job_id, S.FAILED, S.QUEUED)
    retried = ledger.get(job_id)
    assert retried.error is None
    assert retried.finished_at is None
    assert retried.attempts == 1
    assert retried.history[-1].reason == "retry"


def test_concurrent_creates_make_exactly_one_job(ledger: Ledger) -> None:
    barrier = threading.Barrier(16)

    def create(i: int) -> tuple[str, bool]:
        barrier.wait()
        out = ledger.create(NewJob("t1", "doc:race", "auto", metadata={"creator": i}))
        return out.job_id, out.created

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(create, range(64)))
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert ledger.counts(tenant_id="t1")[S.QUEUED] == 1


def test_list_paginates_newest_first_with_filters(ledger: Ledger) -> None:
    ids = [_new(ledger, f"doc:{i}", tenant="t1" if i % 2 else "t2") for i in range(25)]
    for job_id in ids[:5]:
        _move(ledger, job_id, S.QUEUED, S.PROCESSING)
    seen: list[str] = []
    cursor = None
    while True:
        page = ledger.list_jobs(JobFilter(), cursor=cursor, limit=10)
        seen += [j.job_id for j in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    t1 = ledger.list_jobs(JobFilter(tenant_id="t1"), limit=100).items
    assert {j.job_id for j in t1} == set(ids[1::2])
    processing_t1 = ledger.list_jobs(JobFilter(tenant_id="t1", status=S.PROCESSING)).items
    assert {j.job_id for j in processing_t1} == {ids[1], ids[3]}
    assert ledger.list_jobs(JobFilter(pipeline="other")).items == []
    by_doc = ledger.list_jobs(JobFilter(tenant_id="t2", doc_key="doc:4")).items
    assert [j.job_id for j in by_doc] == [ids[4]]


def test_list_filters_by_created_range(ledger: Ledger) -> None:
    early = _new(ledger, "doc:early")
    time.sleep(0.02)
    middle = datetime.now(UTC)
    time.sleep(0.02)
    late = _new(ledger, "doc:late")
    assert [j.job_id for j in ledger.list_jobs(JobFilter(created_after=middle)).items] == [late]
    assert [j.job_id for j in ledger.list_jobs(JobFilter(created_before=middle)).items] == [early]


def test_counts_by_status(ledger: Ledger) -> None:
    for status in S:
        _job_in(ledger, status, f"doc:{status.value}")
    counts = ledger.counts()
    assert counts == dict.fromkeys(S, 1)
    assert ledger.counts(tenant_id="other") == dict.fromkeys(S, 0)


def test_expired_leases_are_listed_until_renewed_or_finished(ledger: Ledger) -> None:
    a, b = _new(ledger, "doc:a"), _new(ledger, "doc:b")
    _move(ledger, a, S.QUEUED, S.PROCESSING, lease_s=0.05)
    _move(ledger, b, S.QUEUED, S.PROCESSING, lease_s=60)
    time.sleep(0.1)
    assert ledger.expired_leases() == [a]
    _move(ledger, a, S.PROCESSING, S.PROCESSING, stage="chunk", lease_s=60)
    assert ledger.expired_leases() == []
    future = datetime.now(UTC) + timedelta(seconds=120)
    assert sorted(ledger.expired_leases(now=future)) == sorted([a, b])
    _move(ledger, b, S.PROCESSING, S.COMPLETED)
    assert ledger.expired_leases(now=future) == [a]


def test_event_stream_is_ordered_and_readable_from_an_id(ledger: Ledger) -> None:
    job_id = _new(ledger)
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, stage="s0")
    for i in range(1, 8):
        _move(ledger, job_id, S.PROCESSING, S.PROCESSING, stage=f"s{i}")
    _move(ledger, job_id, S.PROCESSING, S.COMPLETED)
    events = ledger.events(job_id)
    assert [e.seq for e in events] == list(range(1, 11))
    assert events[0].kind == "created"
    assert events[-1].to_status is S.COMPLETED
    tail = ledger.events(job_id, after=6)
    assert [e.seq for e in tail] == [7, 8, 9, 10]
    assert ledger.events(job_id, after=10) == []
    assert [e.seq for e in ledger.events(job_id, after=2, count=3)] == [3, 4, 5]


def test_a_nul_in_an_output_or_an_error_never_fails_the_write(ledger: Ledger) -> None:
    # text pulled out of a PDF may hold U+0000; PostgreSQL's jsonb cannot, and one such write
    # used to fail its whole batch there. It keeps the NUL where the backend can (U+FFFD else)
    a, b = _new(ledger, "doc:a"), _new(ledger, "doc:b")
    results = ledger.transition_many([
        TransitionRequest(a, S.QUEUED, S.PROCESSING, stage="parse", lease_s=30),
        TransitionRequest(b, S.QUEUED, S.PROCESSING, stage="parse", lease_s=30),
        TransitionRequest(a, S.PROCESSING, S.PROCESSING, stage="chunk", output_stage="parse",
                          output={"title": "Ti\x00tle", "k\x00": ["\\u0000 stays"]}),
        TransitionRequest(b, S.PROCESSING, S.FAILED, error=JobError(
            type="ParseError", message="bad object \x00 at 12", stage="parse")),
    ])  # fmt: skip
    assert [type(r).__name__ for r in results] == ["TransitionOutcome"] * 4
    nul = "\ufffd" if isinstance(ledger, PostgresLedger) else "\x00"
    assert ledger.get(a).outputs["parse"] == {"title": f"Ti{nul}tle", f"k{nul}": ["\\u0000 stays"]}
    error = ledger.get(b).error
    assert error is not None and error.message == f"bad object {nul} at 12"


def test_postgres_refuses_a_job_it_cannot_store_alone(pg_ledger: PostgresLedger) -> None:
    # admission refuses NaN in a request's metadata; a caller of the ledger itself may not
    outcomes = pg_ledger.create_many([
        NewJob("t1", "doc:a", "auto"), NewJob("t1", "doc:nan", "auto", metadata={"x": float("nan")}),
        NewJob("t1", "doc:c", "auto"),
    ])  # fmt: skip
    assert [type(o).__name__ for o in outcomes] == [
        "CreateOutcome", "DamagedRecordError", "CreateOutcome",
    ]  # fmt: skip
    assert "cannot store" in str(outcomes[1])
    assert sorted(j.doc_key for j in pg_ledger.list_jobs(JobFilter()).items) == ["doc:a", "doc:c"]


def test_postgres_refuses_a_value_it_cannot_store_alone(pg_ledger: PostgresLedger) -> None:
    # NaN is not JSON: PostgreSQL refuses that one write, which used to abort the whole batch
    # (the Dispatcher then took the ledger for away and wrote the same batch for ever)
    jobs = [_new(pg_ledger, f"doc:{i}") for i in range(3)]
    starts = [TransitionRequest(j, S.QUEUED, S.PROCESSING, stage="a", lease_s=30) for j in jobs]
    assert all(isinstance(r, TransitionOutcome) for r in pg_ledger.transition_many(starts))
    outputs = [{"score": 0.5}, {"score": float("nan")}, {"score": 1.0}]
    moves = [
        TransitionRequest(j, S.PROCESSING, S.PROCESSING, stage="b", output_stage="a", output=o)
        for j, o in zip(jobs, outputs, strict=True)
    ]
    results = pg_ledger.transition_many(moves)
    assert [type(r).__name__ for r in results] == [
        "TransitionOutcome", "DamagedRecordError", "TransitionOutcome",
    ]  # fmt: skip
    assert results[1].job_id == jobs[1] and "cannot store" in str(results[1])
    assert [pg_ledger.get(j).stage for j in jobs] == ["b", "a", "b"]
    assert pg_ledger.get(jobs[2]).outputs == {"a": {"score": 1.0}}


def test_batch_create_and_transition_report_per_item(ledger: Ledger) -> None:
    outcomes = ledger.create_many(
        [NewJob("t1", f"doc:{i}", "auto") for i in range(5)] + [NewJob("t1", "doc:0", "auto")]
    )
    assert [o.created for o in outcomes] == [True] * 5 + [False]
    assert outcomes[5].job_id == outcomes[0].job_id
    requests = [TransitionRequest(o.job_id, S.QUEUED, S.PROCESSING) for o in outcomes[:5]]
    requests.append(TransitionRequest(outcomes[0].job_id, S.QUEUED, S.PROCESSING))
    requests.append(TransitionRequest(outcomes[1].job_id, S.QUEUED, S.COMPLETED))
    results = ledger.transition_many(requests)
    assert [type(r).__name__ for r in results] == ["TransitionOutcome"] * 5 + [
        "StaleTransitionError",
        "IllegalTransitionError",
    ]
    assert ledger.counts()[S.PROCESSING] == 5


def test_batch_applies_in_order_across_script_calls(ledger: Ledger) -> None:
    # more transitions than one EVALSHA of the Redis script carries, and each job moved twice in
    # the same batch: the second move sees the state the first one left
    outcomes = ledger.create_many([NewJob("t1", f"doc:{i}", "auto") for i in range(100)])
    requests = [
        TransitionRequest(o.job_id, S.QUEUED, S.PROCESSING, stage="a", lease_s=30) for o in outcomes
    ]
    requests += [
        TransitionRequest(
            o.job_id,
            S.PROCESSING,
            S.COMPLETED,
            output_stage="a",
            output={"n": i},
            messages=(OutboxMessage("results", o.job_id, f"v{i}".encode(), f"e{i}"),),
        )
        for i, o in enumerate(outcomes)
    ]
    results = ledger.transition_many(requests)
    assert [type(r).__name__ for r in results] == ["TransitionOutcome"] * 200
    assert [r.seq for r in results] == [2] * 100 + [3] * 100  # type: ignore[union-attr]
    assert ledger.counts()[S.COMPLETED] == 100
    job = ledger.get(outcomes[42].job_id)
    assert [e.to_status for e in job.history] == [S.QUEUED, S.PROCESSING, S.COMPLETED]
    assert job.outputs == {"a": {"n": 42}}
    assert sorted(m.message.value for m in ledger.outbox_claim("c1", limit=500)) == sorted(
        f"v{i}".encode() for i in range(100)
    )


def test_batch_create_dedups_in_order_across_script_calls(ledger: Ledger) -> None:
    # more creates than one EVALSHA of the Redis script carries; each document is asked for
    # twice, the second time in a later script call: the second request finds the first job
    jobs = [NewJob("t1", f"doc:{i}", "auto", priority=i % 3) for i in range(100)]
    jobs += [NewJob("t1", f"doc:{i}", "auto") for i in range(100)]
    outcomes = ledger.create_many(jobs)
    assert [o.created for o in outcomes] == [True] * 100 + [False] * 100
    assert [o.job_id for o in outcomes[100:]] == [o.job_id for o in outcomes[:100]]
    assert ledger.counts()[S.QUEUED] == 100
    job = ledger.get(outcomes[65].job_id)
    assert (job.doc_key, job.priority, job.status) == ("doc:65", 65 % 3, S.QUEUED)
    assert [e.kind for e in job.history] == ["created"]
    groups = {(g.tenant_id, g.priority): g.count for g in ledger.queued_groups()}
    assert groups == {("t1", 0): 34, ("t1", 1): 33, ("t1", 2): 33}


def test_redis_create_error_names_the_job_and_spares_the_rest(
    redis_ledger: RedisLedger,
) -> None:
    taken = NewJob("t1", "doc:taken", "auto")
    redis_ledger._r.set(redis_ledger.keys.job(taken.job_id), "someone else's key")
    refused, created = redis_ledger.create_many([taken, NewJob("t1", "doc:ok", "auto")])
    assert isinstance(refused, DamagedRecordError) and refused.job_id == taken.job_id
    assert f"collision {taken.job_id}" in refused.message
    assert isinstance(created, CreateOutcome) and created.created
    assert [j.doc_key for j in redis_ledger.list_jobs(JobFilter()).items] == ["doc:ok"]
    with pytest.raises(DamagedRecordError, match=f"collision {taken.job_id}"):
        redis_ledger.create(taken)


def test_redis_a_damaged_holder_refuses_its_document_alone_and_get_names_it(
    redis_ledger: RedisLedger,
) -> None:
    first = redis_ledger.create(NewJob("t1", "doc:held", "auto"))
    key = redis_ledger.keys.job(first.job_id)
    redis_ledger._r.delete(key)
    redis_ledger._r.rpush(key, "not a hash")  # the job the document's idem key names
    again, other = redis_ledger.create_many(
        [NewJob("t1", "doc:held", "auto"), NewJob("t1", "doc:other", "auto")]
    )
    assert isinstance(again, DamagedRecordError) and "WRONGTYPE" in again.message
    assert f"job {first.job_id} holding doc:held is damaged" in again.message
    assert isinstance(other, CreateOutcome) and other.created
    with pytest.raises(DamagedRecordError, match=first.job_id):
        redis_ledger.get(first.job_id)
    assert redis_ledger.get(other.job_id).status is S.QUEUED


def test_redis_damaged_record_is_refused_alone_and_skipped_by_reads(
    redis_ledger: RedisLedger,
) -> None:
    ok, broken = (
        o.job_id
        for o in redis_ledger.create_many(
            [NewJob("t1", "doc:ok", "auto"), NewJob("t1", "doc:broken", "auto")]
        )
    )
    # a job key of the wrong type makes its HMGET raise inside the script
    redis_ledger._r.delete(redis_ledger.keys.job(broken))
    redis_ledger._r.set(redis_ledger.keys.job(broken), "not a hash")
    results = redis_ledger.transition_many(
        [TransitionRequest(j, S.QUEUED, S.PROCESSING) for j in (broken, ok)]
    )
    assert isinstance(results[0], DamagedRecordError)
    assert results[0].job_id == broken
    assert broken in str(results[0])
    assert isinstance(results[1], TransitionOutcome)
    assert redis_ledger.get(ok).status is S.PROCESSING
    with pytest.raises(DamagedRecordError, match=broken):
        redis_ledger.transition(TransitionRequest(broken, S.QUEUED, S.PROCESSING))
    # reads that include it skip it instead of failing as a whole
    assert [j.job_id if j else None for j in redis_ledger.get_many([broken, ok])] == [None, ok]
    assert [j.job_id for j in redis_ledger.list_jobs(JobFilter(tenant_id="t1")).items] == [ok]


def test_redis_batches_reload_scripts_the_server_lost(redis_ledger: RedisLedger) -> None:
    # one round trip per batch (EVALSHA straight away); after a restart the script cache is
    # empty, the server answers NOSCRIPT, and the batch is sent again once, applied once
    redis_ledger._r.script_flush()
    outcomes = redis_ledger.create_many([NewJob("t1", f"doc:{i}", "auto") for i in range(3)])
    assert [o.created for o in outcomes] == [True] * 3
    redis_ledger._r.script_flush()
    requests = [TransitionRequest(o.job_id, S.QUEUED, S.PROCESSING) for o in outcomes]
    results = redis_ledger.transition_many(requests)
    assert [type(r).__name__ for r in results] == ["TransitionOutcome"] * 3
    assert [len(redis_ledger.get(o.job_id).history) for o in outcomes] == [2, 2, 2]
    assert redis_ledger.counts()[S.PROCESSING] == 3


def test_get_is_tenant_scoped(ledger: Ledger) -> None:
    job_id = _new(ledger, tenant="t1")
    assert ledger.get(job_id, tenant_id="t1").job_id == job_id
    with pytest.raises(JobNotFoundError):
        ledger.get(job_id, tenant_id="t2")


def test_redis_event_stream_is_capped_but_history_is_kept(
    redis_url: str, redis_prefix: str
) -> None:
    ledger = RedisLedger(redis_url, prefix=redis_prefix, event_maxlen=10)
    job_id = _new(ledger)
    _move(ledger, job_id, S.QUEUED, S.PROCESSING)
    for i in range(300):
        _move(ledger, job_id, S.PROCESSING, S.PROCESSING, stage=f"s{i}")
    events = ledger.events(job_id, count=1000)
    assert len(events) < 300
    assert events[-1].seq == 302
    assert len(ledger.get(job_id).history) == 302
    ledger.close()


def test_redis_short_jobs_keep_their_history_in_the_stream_alone(
    redis_ledger: RedisLedger,
) -> None:
    job_id = _new(redis_ledger)
    _move(redis_ledger, job_id, S.QUEUED, S.PROCESSING, stage="a")
    _move(redis_ledger, job_id, S.PROCESSING, S.COMPLETED)
    assert not redis_ledger._r.exists(redis_ledger.keys.history(job_id))
    assert [e.seq for e in redis_ledger.get(job_id).history] == [1, 2, 3]


def test_redis_history_stays_whole_when_the_stream_cap_changes(
    redis_url: str, redis_prefix: str
) -> None:
    # the list starts once a job passes the cap; a higher cap later stops it growing (the
    # stream keeps the rest), a lower one fills it from the stream before trimming again
    job_id = ""
    for maxlen, moves in ((1000, 5), (10, 40), (1000, 20), (5, 30)):
        ledger = RedisLedger(redis_url, prefix=redis_prefix, event_maxlen=maxlen)
        if not job_id:
            job_id = _new(ledger)
            _move(ledger, job_id, S.QUEUED, S.PROCESSING)
        for i in range(moves):
            _move(ledger, job_id, S.PROCESSING, S.PROCESSING, stage=f"{maxlen}-{i}")
        ledger.close()
    history = RedisLedger(redis_url, prefix=redis_prefix).get(job_id).history
    assert [e.seq for e in history] == list(range(1, 2 + 5 + 40 + 20 + 30 + 1))
    assert history[-1].stage == "5-29"


def test_redis_reads_a_ledger_that_wrote_every_event_to_the_list(
    redis_ledger: RedisLedger,
) -> None:
    # before 2026-12-06 each event went to both the list and the stream: no event twice
    job_id = _new(redis_ledger)
    _move(redis_ledger, job_id, S.QUEUED, S.PROCESSING)
    r, keys = redis_ledger._r, redis_ledger.keys
    for _, fields in r.xrange(keys.events(job_id)):
        r.rpush(keys.history(job_id), fields["e"])
    _move(redis_ledger, job_id, S.PROCESSING, S.COMPLETED)
    assert [e.seq for e in redis_ledger.get(job_id).history] == [1, 2, 3]


def test_outputs_and_absolute_attempts_are_stored_atomically(ledger: Ledger) -> None:
    job_id = _new(ledger)
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, stage="a", attempts=1)
    _move(ledger, job_id, S.PROCESSING, S.PROCESSING, stage="a", attempts=2, expected_attempts=1)
    _move(
        ledger, job_id, S.PROCESSING, S.PROCESSING, stage="b", attempts=1, expected_attempts=2,
        output_stage="a", output={"pages": 3, "nested": {"x": [1, 2]}},
    )  # fmt: skip
    _move(ledger, job_id, S.PROCESSING, S.COMPLETED, output_stage="b", output={})
    job = ledger.get(job_id)
    assert job.outputs == {"a": {"pages": 3, "nested": {"x": [1, 2]}}, "b": {}}
    assert job.attempts == 1
    assert ledger.get_many([job_id])[0].outputs == job.outputs  # type: ignore[union-attr]


def _msg(event_id: str, value: bytes = b"{}", topic: str = "t.results") -> OutboxMessage:
    return OutboxMessage(topic, f"key-{event_id}", value, event_id, (("x-kind", "test"),))


def test_outbox_messages_are_written_with_the_transition_or_not_at_all(ledger: Ledger) -> None:
    job_id = _new(ledger)
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, messages=(_msg("a"), _msg("b")))
    stale = TransitionRequest(job_id, S.QUEUED, S.PROCESSING, messages=(_msg("never"),))
    (refused,) = ledger.transition_many([stale])
    assert isinstance(refused, StaleTransitionError)
    entries = ledger.outbox_claim("relay-1")
    assert [e.message.event_id for e in entries] == ["a", "b"]
    assert entries[0].message == _msg("a")
    assert ledger.outbox_depth() == 2


def test_outbox_keeps_binary_values_unchanged(ledger: Ledger) -> None:
    raw = b"\xff" * 1000 + b"\x00\xfe"
    ledger.outbox_put([_msg("bin", raw)])
    (entry,) = ledger.outbox_claim("relay-1")
    assert entry.message.value == raw
    assert entry.message.headers == (("x-kind", "test"),)


def test_outbox_redelivers_until_acknowledged(ledger: Ledger) -> None:
    ledger.outbox_put([_msg("1"), _msg("2"), _msg("3")])
    first = ledger.outbox_claim("relay-1", limit=2)
    assert [e.message.event_id for e in first] == ["1", "2"]
    ledger.outbox_ack([first[0].entry_id])
    again = ledger.outbox_claim("relay-1", limit=10)  # own unacknowledged first, then new
    assert [e.message.event_id for e in again] == ["2", "3"]
    assert ledger.outbox_claim("relay-2", limit=10, min_idle_s=3600) == []  # not stale yet
    taken = ledger.outbox_claim("relay-2", limit=10, min_idle_s=0)  # relay-1 presumed dead
    assert sorted(e.message.event_id for e in taken) == ["2", "3"]
    ledger.outbox_ack([e.entry_id for e in taken])
    assert ledger.outbox_depth() == 0
    assert ledger.outbox_claim("relay-1") == []


def test_stage_budgets_and_retry_time_are_stored_with_the_transition(ledger: Ledger) -> None:
    job_id = _new(ledger)
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, stage="a", attempts=1)
    before = datetime.now(UTC)
    _move(
        ledger, job_id, S.PROCESSING, S.PROCESSING, stage="a", attempts=2, expected_attempts=1,
        stage_errors=1, stage_losses=0, retry_in_s=30,
    )  # fmt: skip
    job = ledger.get(job_id)
    assert (job.stage_errors, job.stage_losses, job.attempts) == (1, 0, 2)
    assert job.next_attempt_at is not None
    assert before + timedelta(seconds=29) <= job.next_attempt_at <= before + timedelta(seconds=32)
    _move(ledger, job_id, S.PROCESSING, S.PROCESSING, stage="a", attempts=3, stage_losses=1)
    job = ledger.get_many([job_id])[0]
    assert job is not None
    assert (job.stage_errors, job.stage_losses, job.next_attempt_at) == (1, 1, None)


def test_prune_deletes_finished_jobs_older_than_the_cutoff_and_nothing_else(
    ledger: Ledger,
) -> None:
    old = {s: _job_in(ledger, s, f"doc:old-{s.value}") for s in S}
    _move(ledger, old[S.PROCESSING], S.PROCESSING, S.PROCESSING, stage="a", lease_s=60)
    replaced = _job_in(ledger, S.FAILED, "doc:replaced")
    holder = ledger.create(NewJob("t1", "doc:replaced", "auto")).job_id  # now holds the doc
    other_tenant = _new(ledger, "doc:t2", tenant="t2")
    _move(ledger, other_tenant, S.QUEUED, S.CANCELLED)
    time.sleep(0.05)
    cutoff = datetime.now(UTC)
    time.sleep(0.05)
    young = _job_in(ledger, S.COMPLETED, "doc:young")

    assert ledger.prune(cutoff, tenant_id="t1") == 4  # completed, failed, cancelled, replaced
    assert ledger.prune(cutoff, tenant_id="t1") == 0  # idempotent
    for job_id in (old[S.COMPLETED], old[S.FAILED], old[S.CANCELLED], replaced):
        with pytest.raises(JobNotFoundError):
            ledger.get(job_id)
        assert ledger.events(job_id) == []
        assert ledger.get_many([job_id]) == [None]
    kept = {old[S.QUEUED], old[S.PROCESSING], holder, young}
    assert {j.job_id for j in ledger.list_jobs(JobFilter(tenant_id="t1")).items} == kept
    assert ledger.list_jobs(JobFilter(tenant_id="t1", doc_key="doc:old-completed")).items == []
    assert ledger.counts(tenant_id="t1") == {
        S.QUEUED: 2, S.PROCESSING: 1, S.COMPLETED: 1, S.FAILED: 0, S.CANCELLED: 0,
    }  # fmt: skip
    future = datetime.now(UTC) + timedelta(seconds=120)
    assert ledger.expired_leases(now=future) == [old[S.PROCESSING]]
    # the pruned completed job no longer holds its document; the replacement still holds its own
    again = ledger.create(NewJob("t1", "doc:old-completed", "auto"))
    assert again.created and again.job_id != old[S.COMPLETED]
    assert ledger.create(NewJob("t1", "doc:replaced", "auto")).job_id == holder
    # every tenant but t2, then t2 as well
    assert ledger.prune(cutoff, exclude_tenants=["t2"]) == 0
    assert ledger.get(other_tenant).status is S.CANCELLED
    assert ledger.prune(cutoff) == 1
    assert ledger.counts(tenant_id="t2") == dict.fromkeys(S, 0)


def test_prune_works_through_more_jobs_than_one_batch(ledger: Ledger) -> None:
    ids = [_job_in(ledger, S.CANCELLED, f"doc:{i}") for i in range(25)]
    time.sleep(0.02)
    assert ledger.prune(datetime.now(UTC), batch=10) == 25
    assert ledger.get_many(ids) == [None] * 25


def test_redis_prune_leaves_no_key_or_index_entry_of_the_job(
    redis_url: str, redis_prefix: str
) -> None:
    import redis as redis_lib

    ledger = RedisLedger(redis_url, prefix=redis_prefix)
    job_id = _new(ledger, "doc:gone")
    _move(ledger, job_id, S.QUEUED, S.PROCESSING, stage="chunk", lease_s=60)
    _move(ledger, job_id, S.PROCESSING, S.COMPLETED)
    keep = _new(ledger, "doc:kept")
    time.sleep(0.02)
    assert ledger.prune(datetime.now(UTC)) == 1
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    names = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
    assert not [n for n in names if job_id in n]
    for name in names:
        if client.type(name) == "zset":
            assert client.zscore(name, job_id) is None, name
        elif client.type(name) == "string":
            assert client.get(name) != job_id, name
    assert ledger.get(keep).status is S.QUEUED
    client.close()
    ledger.close()


def test_concurrent_transitions_of_one_job_apply_exactly_once(ledger: Ledger) -> None:
    job_id = _new(ledger)
    barrier = threading.Barrier(16)

    def start(i: int) -> bool:
        barrier.wait()
        try:
            _move(ledger, job_id, S.QUEUED, S.PROCESSING, attempts=1, data={"by": i})
        except StaleTransitionError:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        won = list(pool.map(start, range(16)))
    assert sum(won) == 1
    history = ledger.get(job_id).history
    assert [e.kind for e in history] == ["created", "transition"]
    assert history[-1].data == {"by": won.index(True)}


def _queued_groups(ledger: Ledger) -> dict[tuple[str, int], tuple[int, str]]:
    return {(g.tenant_id, g.priority): (g.count, g.oldest_job_id) for g in ledger.queued_groups()}


def test_queued_index_groups_queued_jobs_by_tenant_and_priority(ledger: Ledger) -> None:
    made = {}
    for name, tenant, priority in [("a1", "A", 3), ("a2", "A", 3), ("a3", "A", 7), ("b1", "B", 3)]:
        made[name] = _new(ledger, f"doc:{name}", tenant=tenant, priority=priority)
        time.sleep(0.002)  # ULIDs of one millisecond are not ordered
    assert _queued_groups(ledger) == {
        ("A", 3): (2, made["a1"]), ("A", 7): (1, made["a3"]), ("B", 3): (1, made["b1"])
    }  # fmt: skip
    assert ledger.queued_ids("A", 3) == [made["a1"], made["a2"]]
    assert ledger.queued_ids("A", 3, after=made["a1"]) == [made["a2"]]
    assert ledger.queued_ids("A", 3, limit=1) == [made["a1"]]
    assert ledger.queued_ids("nobody", 5) == []


def test_queued_index_follows_every_way_in_and_out_of_queued(ledger: Ledger) -> None:
    first = _new(ledger, "doc:1", tenant="A", priority=2)
    time.sleep(0.002)
    second = _new(ledger, "doc:2", tenant="A", priority=2)
    cancelled = _new(ledger, "doc:3", tenant="A", priority=9)
    _move(ledger, first, S.QUEUED, S.PROCESSING, stage="chunk")
    _move(ledger, cancelled, S.QUEUED, S.CANCELLED)
    assert _queued_groups(ledger) == {("A", 2): (1, second)}
    _move(ledger, first, S.PROCESSING, S.FAILED)
    _move(ledger, first, S.FAILED, S.QUEUED)  # a retry is queued again, in its old place
    assert ledger.queued_ids("A", 2) == [first, second]
    _move(ledger, first, S.QUEUED, S.PROCESSING)
    _move(ledger, second, S.QUEUED, S.PROCESSING)
    assert ledger.queued_groups() == []


def test_redis_queued_index_catches_up_on_jobs_queued_before_it_existed(
    redis_url: str, redis_prefix: str
) -> None:
    import redis as redis_lib

    old = RedisLedger(redis_url, prefix=redis_prefix)
    jobs = [_new(old, f"doc:{i}", tenant="legacy", priority=4) for i in range(3)]
    _move(old, jobs[2], S.QUEUED, S.PROCESSING)
    client = redis_lib.Redis.from_url(redis_url)
    client.delete(*client.keys(f"{redis_prefix}idx:fair*"))  # as an older release left it
    client.close()
    old.close()
    ledger = RedisLedger(redis_url, prefix=redis_prefix)
    assert _queued_groups(ledger) == {("legacy", 4): (2, min(jobs[:2]))}
    assert sorted(ledger.queued_ids("legacy", 4)) == sorted(jobs[:2])
    ledger.close()
