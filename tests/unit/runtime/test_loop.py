"""The Dispatcher's loop on InMemoryLedger, fake pools, a fake inbox and a fake clock: no Ray."""

from __future__ import annotations

import random

import pytest

from ingest_ray.control import CancelJob, RequeueJob
from ingest_ray.errors import DamagedRecordError, LedgerError, PermanentError
from ingest_ray.events import decode
from ingest_ray.ledger.base import TransitionOutcome, TransitionRequest
from ingest_ray.runtime.parts import CallLost
from ingest_ray.runtime.work import Dispatch, StageFailure
from ingest_ray.stages.base import StageInput, StageOutput
from ingest_ray.states import JobStatus
from ingest_ray.testing import InMemoryLedger
from tests.unit.runtime.loop_fakes import catalog, rig, sync

S = JobStatus


def _topics(r: object) -> list[tuple[str, str]]:
    entries = r.ledger.outbox_claim("test", limit=1000)  # type: ignore[attr-defined]
    return [(e.message.topic, decode(e.message.value).event_type) for e in entries]


@sync
async def test_loop_runs_a_job_through_its_pipeline_and_records_its_messages() -> None:
    r = rig()
    job = r.create("doc-1")
    assert await r.loop.start() == 1
    await r.until(lambda: r.status(job) == "completed")
    assert [c.dispatch.stage for c in r.launcher.calls] == ["a", "b", "idx"]
    assert sorted(_topics(r)) == [("map", "mapping.request"), ("res", "ingest.result")]
    history = [(e.from_status, e.to_status, e.stage) for e in r.ledger.get(job).history]
    assert history[1:] == [(S.QUEUED, S.PROCESSING, "a"), (S.PROCESSING, S.PROCESSING, "b"),
                           (S.PROCESSING, S.PROCESSING, "idx"),
                           (S.PROCESSING, S.COMPLETED, None)]  # fmt: skip
    assert not r.loop.core.holds(job)


@sync
async def test_loop_keeps_outcomes_while_the_ledger_is_away_and_writes_them_later() -> None:
    r = rig(behaviour=lambda d, i: None)  # calls answer when the test says
    job, call = await r.started_call()
    r.ledger.down = ConnectionError("redis is away")
    call.future.set_result([StageOutput()])
    await r.steps(5)
    assert r.loop.core.holds(job) and r.loop.core.nowhere() == []  # settling, not stranded
    assert r.loop.stats().ledger_error is not None
    r.ledger.down = None
    assert r.status(job) == "processing"
    r.clock.now += 10  # past the backoff
    await r.until(lambda: r.ledger.get(job).stage == "b")
    assert r.loop.stats().ledger_error is None


@sync
async def test_loop_puts_a_dispatch_back_when_its_start_write_fails() -> None:
    r = rig()
    job = r.create("doc-1")
    await r.loop.start()
    r.ledger.down = ConnectionError("redis is away")
    await r.steps(3)
    assert r.launcher.calls == [] and r.loop.core.holds(job)
    assert r.loop.core.nowhere() == []
    r.ledger.down = None
    r.clock.now += 10
    await r.until(lambda: r.status(job) == "completed")


@sync
async def test_loop_drops_a_job_cancelled_before_it_started_and_runs_its_batch_mates() -> None:
    r = rig()
    jobs = [r.create(f"doc-{i}") for i in range(3)]
    await r.loop.start()
    r.ledger.transition(TransitionRequest(jobs[1], S.QUEUED, S.CANCELLED))
    await r.until(lambda: r.status(jobs[0]) == r.status(jobs[2]) == "completed")
    assert r.status(jobs[1]) == "cancelled"
    assert jobs[1] not in {i.job_id for c in r.launcher.calls for i in c.inputs}


@sync
async def test_loop_cancel_reaches_the_running_stage_and_takes_back_its_effects() -> None:
    def behaviour(d: Dispatch, inputs: list[StageInput]) -> list[StageOutput] | None:
        return None if d.stage == "idx" else [StageOutput() for _ in inputs]

    r = rig(behaviour)
    job, call = await r.started_call()
    r.ledger.transition(TransitionRequest(job, S.PROCESSING, S.CANCELLED))
    r.inbox.push(CancelJob(job, "p"))
    await r.steps(3)
    assert r.launcher.cancelled == [job]  # the stage was told
    assert len(r.inbox.entries) == 1  # not acknowledged while the call runs
    call.future.set_result([StageOutput()])  # it finished anyway
    await r.until(lambda: not r.inbox.entries)
    assert r.launcher.compensated == [("idx", job)]  # its index rows are taken back
    assert not r.loop.core.holds(job)
    assert _topics(r) == []  # no result for a cancelled job


@sync
async def test_loop_cancel_of_a_waiting_job_compensates_what_it_did_already() -> None:
    r = rig(behaviour=lambda d, i: None)
    job, call = await r.started_call()
    call.future.set_result([StageFailure("Flaky", "x", retryable=True)])
    await r.until(lambda: r.loop.core.stats().timers == 1)  # waiting for its retry
    r.ledger.transition(TransitionRequest(job, S.PROCESSING, S.CANCELLED))
    r.inbox.push(CancelJob(job, "p"))
    await r.until(lambda: not r.inbox.entries)
    assert not r.loop.core.holds(job)
    assert r.launcher.compensated == []  # it never reached the index


@sync
async def test_loop_a_failed_compensation_keeps_the_command_for_later() -> None:
    r = rig()
    job = r.create("doc-1")
    await r.loop.start()
    await r.until(lambda: r.status(job) == "completed")
    r.launcher.fail_compensation = True
    r.inbox.push(CancelJob(job, "p"))  # e.g. a cancel that raced with completion
    await r.steps(3)
    assert len(r.inbox.entries) == 1
    r.launcher.fail_compensation = False
    r.clock.now += 5
    await r.until(lambda: not r.inbox.entries)
    assert r.launcher.compensated == [("idx", job)]


@sync
async def test_loop_lost_calls_spend_the_loss_budget_and_the_job_still_completes() -> None:
    deaths = {"n": 0}

    def behaviour(d: Dispatch, inputs: list[StageInput]) -> object:
        if d.stage == "b" and deaths["n"] < 4:
            deaths["n"] += 1
            return CallLost("actor died")
        return [StageOutput() for _ in inputs]

    r = rig(behaviour)  # type: ignore[arg-type]
    job = r.create("doc-1")
    await r.loop.start()
    for _ in range(300):
        if r.status(job) == "completed":
            break
        r.clock.now += 5
        await r.steps()
    assert r.status(job) == "completed"  # 4 losses > the error budget of 3, still fine
    b_tries = [e for e in r.ledger.get(job).history if e.data.get("lost")]
    assert len(b_tries) == 4
    attempts = r.loop.metrics.snapshot().counters["ingest_stage_attempts"]
    assert attempts[("b", "lost")] == 4  # each loss counted once


class _PickyLedger(InMemoryLedger):
    """Refuses to store an output holding ``bad`` (as PostgreSQL refuses a NaN)."""

    def _apply(self, req: TransitionRequest) -> TransitionOutcome | LedgerError:
        if req.output and "bad" in req.output:
            return DamagedRecordError(f"transition of {req.job_id}: cannot store it",
                                      job_id=req.job_id)  # fmt: skip
        return super()._apply(req)


@sync
async def test_loop_fails_a_job_whose_output_the_ledger_cannot_store_with_its_reason() -> None:
    def behaviour(d: Dispatch, inputs: list[StageInput]) -> list[StageOutput]:
        return [StageOutput(data={"bad": 1} if i.doc_key == "doc-bad" else {}) for i in inputs]

    r = rig(behaviour, ledger=_PickyLedger())  # type: ignore[arg-type]
    good, bad = r.create("doc-good"), r.create("doc-bad")
    await r.loop.start()
    await r.until(lambda: r.status(good) == "completed" and r.status(bad) == "failed")
    job = r.ledger.get(bad)
    assert job.error is not None and job.error.type == "DamagedRecordError"
    assert job.stage == "a" and "cannot store it" in job.error.message
    assert ("dlq", "ingest.deadletter") in _topics(r)  # and the failed result, as for any fail
    assert not r.loop.core.holds(bad) and r.loop.core.nowhere() == []
    assert "damaged_record" in (r.loop.stats().last_error or "")


@sync
async def test_loop_counts_a_try_the_ledger_refused_as_refused_not_as_done() -> None:
    r = rig(behaviour=lambda d, i: None)  # calls answer when the test says
    job, call = await r.started_call()
    # someone else moves the job on (an operator's requeue, a second Dispatcher) mid-call
    r.ledger.transition(TransitionRequest(job, S.PROCESSING, S.PROCESSING, stage="a",
                                          attempts_delta=1))  # fmt: skip
    call.future.set_result([StageOutput()])
    await r.steps(5)
    attempts = r.loop.metrics.snapshot().counters["ingest_stage_attempts"]
    assert attempts.get(("a", "refused")) == 1
    assert ("a", "ok") not in attempts


def test_loop_recovers_processing_jobs_as_their_next_try_and_waits_for_scheduled_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda lo, hi: hi)  # a retry delay of a full second
    _recovers()


@sync
async def _recovers() -> None:
    first = rig(behaviour=lambda d, i: None)
    for i in range(3):
        first.create(f"doc-{i}")
    await first.loop.start()
    await first.until(lambda: len(first.launcher.pending()) == 1)
    call = first.launcher.pending()[0]
    assert len(call.inputs) == 3
    running, retrying, queued = (i.job_id for i in call.inputs)  # in dispatch order
    call.future.set_result([StageOutput(), StageFailure("Flaky", "x", True), StageOutput()])
    await first.until(lambda: first.loop.core.stats().timers == 1)
    first.ledger.transition(TransitionRequest(queued, S.PROCESSING, S.CANCELLED))
    # the Dispatcher dies here; a new one starts over the same ledger
    second = rig(ledger=first.ledger)
    before = second.ledger.get(running).attempts
    assert await second.loop.start() == 2  # the running one and the one waiting to retry
    assert second.ledger.get(running).attempts == before + 1  # a late write of the old try fails
    await second.until(lambda: second.status(running) == "completed")
    resumed = [e.data for e in second.ledger.get(running).history if "resumed_attempt" in e.data]
    assert resumed == [{"resumed_attempt": before, "lost": False}]
    assert second.status(retrying) == "processing"  # its retry is not due yet
    assert second.loop.core.stats().timers == 1
    second.clock.now += 30
    await second.until(lambda: second.status(retrying) == "completed")


@sync
async def test_loop_reconcile_repairs_queued_jobs_nobody_holds_and_orphaned_leases() -> None:
    r = rig()
    await r.loop.start()
    stray = r.create("doc-stray")  # admitted while the hand-over was lost
    orphan = r.create("doc-orphan")
    r.ledger.transition(TransitionRequest(orphan, S.QUEUED, S.PROCESSING, stage="a",
                                          attempts=1, lease_s=10))  # fmt: skip
    r.wall.advance(60)  # its lease ran out with nobody holding it
    await r.loop.recovery.reconcile()
    assert r.loop.recovery.repairs == {"queued_not_held": 1, "lease_expired": 1}
    await r.until(lambda: r.status(stray) == r.status(orphan) == "completed", tick=1)
    job = r.ledger.get(orphan)
    assert any(e.data.get("lost") for e in job.history)  # the lost try spent a loss


@sync
async def test_loop_reconcile_drops_held_jobs_the_ledger_says_are_cancelled() -> None:
    r = rig(behaviour=lambda d, i: [StageFailure("Flaky", "x", True)] * len(i))
    job = r.create("doc-1")
    await r.loop.start()
    await r.until(lambda: r.loop.core.stats().timers == 1)
    r.ledger.transition(TransitionRequest(job, S.PROCESSING, S.CANCELLED))  # no command sent
    await r.loop.recovery.reconcile()
    assert r.loop.core.holds(job)  # not waiting long enough yet to be worth a look
    r.clock.now += 40
    await r.loop.recovery.reconcile()
    assert not r.loop.core.holds(job)
    assert r.loop.recovery.repairs["held_finished"] == 1


@sync
async def test_loop_requeue_command_picks_up_a_retried_job() -> None:
    r = rig(behaviour=lambda d, i: [StageFailure("Bad", "no", False)] * len(i))
    job = r.create("doc-1")
    await r.loop.start()
    await r.until(lambda: r.status(job) == "failed")
    assert ("dlq", "ingest.deadletter") in _topics(r)
    r.launcher.behaviour = lambda d, i: [StageOutput() for _ in i]
    from ingest_ray.control import JobControl  # the real control path, over a fake inbox

    JobControl(r.ledger, r.inbox).retry(job)  # type: ignore[arg-type]
    assert isinstance(next(iter(r.inbox.entries.values())), RequeueJob)
    await r.until(lambda: r.status(job) == "completed")


@sync
async def test_loop_fails_a_job_record_it_cannot_run_and_recovers_the_rest() -> None:
    r = rig()
    from ingest_ray.ledger.base import NewJob

    broken = r.ledger.create(NewJob(tenant_id="t", doc_key="doc-b", pipeline="p")).job_id
    r.ledger.transition(TransitionRequest(broken, JobStatus.QUEUED, JobStatus.PROCESSING,
                                          stage="nowhere", attempts=1))  # fmt: skip
    good = r.create("doc-ok")
    await r.loop.start()  # the record without a source does not stop the recovery
    await r.until(lambda: r.status(good) == "completed" and r.status(broken) == "failed")
    error = r.ledger.get(broken).error
    assert error is not None and error.type == "BadJobRecordError", error
    assert ("dlq", "ingest.deadletter") in _topics(r)


@sync
async def test_loop_fails_a_queued_job_of_an_unknown_pipeline_with_a_dead_letter() -> None:
    r = rig()
    stray = r.create("doc-x", pipeline="removed")
    good = r.create("doc-ok")
    await r.loop.start()
    await r.until(lambda: r.status(good) == "completed" and r.status(stray) == "failed")
    error = r.ledger.get(stray).error
    assert error is not None and "unknown pipeline" in error.message
    assert ("dlq", "ingest.deadletter") in _topics(r)


@sync
async def test_loop_a_stage_error_in_a_batch_fails_only_its_item() -> None:
    def behaviour(d: Dispatch, inputs: list[StageInput]) -> list[object]:
        return [PermanentError("bad") if i.doc_key == "doc-bad" and d.stage == "b"
                else StageOutput() for i in inputs]  # fmt: skip

    def as_results(d: Dispatch, inputs: list[StageInput]) -> list[object]:
        return [StageFailure.from_error(x) if isinstance(x, Exception) else x
                for x in behaviour(d, inputs)]  # fmt: skip

    r = rig(as_results)  # type: ignore[arg-type]
    good, bad = r.create("doc-good"), r.create("doc-bad")
    await r.loop.start()
    await r.until(lambda: r.status(good) == "completed" and r.status(bad) == "failed")


@sync
async def test_loop_tells_the_launcher_what_is_on_its_way_to_an_accelerated_pool() -> None:
    r = rig(behaviour=lambda d, i: None, cat=catalog(accelerated="b"))  # calls stay running at a
    for i in range(3):
        r.create(f"doc-{i}")
    await r.loop.start()
    await r.until(lambda: len(r.launcher.calls) > 0)
    r.clock.now += 3600  # the next maintain is due
    await r.steps(1)
    assert r.launcher.looked_ahead[-1] == {"b": 3, "idx": 3}  # every pool after a
    assert r.launcher.maintained[-1].get("b", 0) == 0  # nothing is ready for b yet
