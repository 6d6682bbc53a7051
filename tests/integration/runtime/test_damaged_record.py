"""One damaged job record in Redis, or one output PostgreSQL cannot store, does not stop the
Dispatcher's loop: the loop of ``tests/unit/runtime/test_loop.py`` (fake pools and clock), on the
real ledgers."""

from __future__ import annotations

from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.runtime.work import Dispatch
from ingest_ray.stages.base import StageInput, StageOutput
from tests.unit.runtime.loop_fakes import ok, rig, sync


@sync
async def test_loop_drops_a_job_whose_record_is_damaged_and_runs_its_batch_mates(
    redis_ledger: RedisLedger,
) -> None:
    r = rig(behaviour=lambda d, i: None, ledger=redis_ledger)  # type: ignore[arg-type]
    done, broken = r.create("doc-ok"), r.create("doc-broken")
    await r.loop.start()
    await r.until(lambda: bool(r.launcher.pending()))
    (call,) = r.launcher.pending()
    assert sorted(i.job_id for i in call.dispatch.items) == sorted([done, broken])
    # while the stage runs, the broken job's hash becomes a key of another type: every write to
    # it raises inside the transition script
    redis_ledger._r.delete(redis_ledger.keys.job(broken))
    redis_ledger._r.set(redis_ledger.keys.job(broken), "not a hash")
    call.future.set_result([StageOutput(), StageOutput()])

    r.launcher.behaviour = ok  # the stages after the first answer at once
    await r.until(lambda: r.status(done) == "completed")
    assert not r.loop.core.holds(broken)
    stats = r.loop.stats()
    assert stats.ledger_error is None  # the ledger is not reported away
    assert stats.last_error is not None and "damaged_record" in stats.last_error
    assert broken in stats.last_error
    assert redis_ledger._r.get(redis_ledger.keys.job(broken)) == "not a hash"  # left as it was


@sync
async def test_loop_fails_a_job_whose_output_postgres_cannot_store_and_runs_its_batch_mates(
    pg_ledger: PostgresLedger,
) -> None:
    # a NaN in a stage's output is not JSON: PostgreSQL refuses that write. The job fails at
    # its stage with the ledger's reason (and its dead letter); the others go on
    def behaviour(d: Dispatch, inputs: list[StageInput]) -> list[StageOutput]:
        return [
            StageOutput(data={"score": float("nan") if i.doc_key == "doc-nan" else 0.5})
            for i in inputs
        ]

    r = rig(behaviour, ledger=pg_ledger)  # type: ignore[arg-type]
    good, bad = r.create("doc-good"), r.create("doc-nan")
    await r.loop.start()
    await r.until(lambda: r.status(good) == "completed" and r.status(bad) == "failed")
    job = pg_ledger.get(bad)
    assert job.error is not None and job.error.type == "DamagedRecordError"
    assert "cannot store" in job.error.message and job.stage == "a"
    assert pg_ledger.get(good).outputs["a"] == {"score": 0.5}
    letters = [e.message for e in pg_ledger.outbox_claim("t", limit=100)]
    assert any(m.topic == "dlq" and m.key == "doc-nan" for m in letters)
    assert r.loop.stats().ledger_error is None
