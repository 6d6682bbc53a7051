from __future__ import annotations

import random

import pytest

from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.retry import RetryPolicy
from ingest_ray.runtime.dispatch_core import Advance, DispatcherCore, Fail, Finish, Retry
from ingest_ray.runtime.work import StageFailure, WorkItem
from ingest_ray.stages.base import StageOutput


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _catalog(*, budget: int = 1, batch: int = 1, retry: RetryPolicy | None = None) -> Catalog:
    cat = Catalog()
    for name in ("a", "b"):
        cat.register_stage(name, "x:y", PoolSpec(name, max_in_flight=budget, batch_size=batch))
    policy = retry or RetryPolicy(max_attempts=3, base_delay_s=1, max_delay_s=8)
    cat.register_pipeline(
        Pipeline("p", (StageSpec("a", retry=policy, timeout_s=10, lease_grace_s=0), StageSpec("b")))
    )
    return cat


def _item(job: str, priority: int = 5) -> WorkItem:
    return WorkItem(
        job, "t", f"doc:{job}", "p", priority, DocumentSource(kind=SourceKind.TEXT, value="x")
    )


def _core(clock: Clock, **kw: object) -> DispatcherCore:
    cat = kw.pop("catalog", None) or _catalog()
    return DispatcherCore(cat, clock=clock, **kw)  # type: ignore[arg-type]


def _drain_order(core: DispatcherCore, clock: Clock) -> list[str]:
    order = []
    while True:
        batch = core.next_dispatches()
        if not batch:
            return order
        for d in batch:
            order += [i.job_id for i in d.items]
            for o in core.complete(d.dispatch_id, [StageOutput()] * len(d.items)):
                core.apply(o, accepted=False)
        clock.now += 0.001


def test_dispatch_core_orders_by_priority_then_age() -> None:
    clock = Clock()
    core = _core(clock)
    for job, prio in [("low1", 1), ("high1", 9), ("mid", 5)]:
        core.admit([_item(job, prio)])
        clock.now += 1
    core.admit([_item("high2", 9)])
    assert _drain_order(core, clock) == ["high1", "high2", "mid", "low1"]


def test_dispatch_core_aging_lets_old_low_priority_jobs_through() -> None:
    clock = Clock()
    core = _core(clock, aging_s=10)
    core.admit([_item("old-low", 0)])
    clock.now += 95  # 0 + 95/10 = 9.5 beats a fresh 9
    core.admit([_item("new-high", 9)])
    assert _drain_order(core, clock)[0] == "old-low"


def test_dispatch_core_respects_pool_budget_and_batch_size() -> None:
    clock = Clock()
    core = _core(clock, catalog=_catalog(budget=2, batch=3))
    core.admit([_item(f"j{i}") for i in range(10)])
    first = core.next_dispatches()
    assert [len(d.items) for d in first] == [3, 3]
    assert core.next_dispatches() == []  # budget of 2 in flight used up
    core.complete(first[0].dispatch_id, [StageOutput()] * 3)
    assert [len(d.items) for d in core.next_dispatches()] == [3]


def _one_pool(*, batch: int, coalesce: bool = True) -> Catalog:
    cat = Catalog()
    pool = PoolSpec("a", max_in_flight=4, batch_size=batch, actor_concurrency=4, coalesce=coalesce)
    cat.register_stage("a", "x:y", pool)
    cat.register_pipeline(Pipeline("p", (StageSpec("a"),)))
    return cat


def test_dispatch_core_coalesces_partial_batches_while_the_actor_is_busy() -> None:
    clock = Clock()
    core = _core(clock, catalog=_one_pool(batch=4))
    core.admit([_item("j0")])
    (lone,) = core.next_dispatches()  # an idle actor takes a batch of one at once
    assert [i.job_id for i in lone.items] == ["j0"]
    core.admit([_item(f"j{i}") for i in range(1, 4)])
    assert core.next_dispatches() == []  # the one actor holds a partial batch: these wait
    core.complete(lone.dispatch_id, [StageOutput()])
    (together,) = core.next_dispatches()
    assert [i.job_id for i in together.items] == ["j1", "j2", "j3"]


def test_dispatch_core_full_batches_use_the_whole_budget_while_coalescing() -> None:
    clock = Clock()
    core = _core(clock, catalog=_one_pool(batch=2))
    core.admit([_item("j0")])
    assert [len(d.items) for d in core.next_dispatches()] == [1]
    core.admit([_item(f"j{i}") for i in range(1, 6)])
    assert [len(d.items) for d in core.next_dispatches()] == [2, 2]  # the fifth job waits
    assert core.stats().in_flight["a"] == 3


def test_dispatch_core_without_coalescing_sends_every_partial_batch() -> None:
    clock = Clock()
    core = _core(clock, catalog=_one_pool(batch=4, coalesce=False))
    for i in range(3):
        core.admit([_item(f"j{i}")])
        assert [len(d.items) for d in core.next_dispatches()] == [1]


def test_dispatch_core_gives_each_actor_a_partial_batch() -> None:
    clock = Clock()
    cat = Catalog()
    cat.register_stage("a", "x:y", PoolSpec("a", max_in_flight=4, batch_size=8,
                                            actor_concurrency=1, max_size=2))  # fmt: skip
    cat.register_pipeline(Pipeline("p", (StageSpec("a"),)))
    core = _core(clock, catalog=cat)
    core.set_budgets({"a": 2})  # two actors of one call each
    for i in range(3):
        core.admit([_item(f"j{i}")])
        core.next_dispatches()
    assert core.stats().in_flight["a"] == 2  # one partial batch per actor; j2 waits
    assert core.stats().ready == {"a": 1}


def test_dispatch_core_advances_then_finishes() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit([_item("j")])
    (d,) = core.next_dispatches()
    (adv,) = core.complete(d.dispatch_id, [StageOutput(data={"n": 1})])
    assert isinstance(adv, Advance)
    assert adv.next_stage == "b"
    core.apply(adv, accepted=True)
    (d2,) = core.next_dispatches()
    assert d2.stage == "b"
    assert d2.items[0].outputs == {"a": {"n": 1}}
    (fin,) = core.complete(d2.dispatch_id, [StageOutput()])
    assert isinstance(fin, Finish)
    core.apply(fin, accepted=True)
    assert not core.holds("j")


def test_dispatch_core_finish_flag_ends_pipeline_early() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit([_item("j")])
    (d,) = core.next_dispatches()
    (out,) = core.complete(d.dispatch_id, [StageOutput(finish=True, outcome="no full text")])
    assert isinstance(out, Finish)
    assert out.outcome == "no full text"


def test_dispatch_core_retries_with_growing_delays_then_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda lo, hi: hi)  # make the full jitter deterministic
    clock = Clock()
    core = _core(clock)
    core.admit([_item("j")])
    boom = StageFailure("Flaky", "try again", retryable=True)
    delays = []
    for attempt in (1, 2):
        (d,) = core.next_dispatches()
        assert d.items[0].attempt == attempt
        (out,) = core.complete(d.dispatch_id, [boom])
        assert isinstance(out, Retry)
        delays.append(out.delay_s)
        core.apply(out, accepted=True)
        assert core.next_dispatches() == []  # waiting on its timer, holding no budget
        clock.now += out.delay_s
        assert core.fire_timers() == 1
    assert delays == [1.0, 2.0]
    (d,) = core.next_dispatches()
    (out,) = core.complete(d.dispatch_id, [boom])
    assert isinstance(out, Fail)
    assert out.attempt == 3


def test_dispatch_core_permanent_error_fails_at_once() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit([_item("j")])
    (d,) = core.next_dispatches()
    (out,) = core.complete(d.dispatch_id, [StageFailure("Bad", "no", retryable=False)])
    assert isinstance(out, Fail)
    assert out.attempt == 1


def test_dispatch_core_lease_expiry_reruns_stage_with_next_attempt() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit([_item("j")])
    (d,) = core.next_dispatches()
    clock.now += 5
    assert core.expire_leases() == []
    clock.now += 6  # past timeout_s=10
    (out,) = core.expire_leases()
    assert isinstance(out, Retry)
    assert out.failure.error_type == "LeaseExpired"
    core.apply(out, accepted=True)
    assert core.complete(d.dispatch_id, [StageOutput()]) == []  # the late result is ignored
    clock.now += out.delay_s
    core.fire_timers()
    (d2,) = core.next_dispatches()
    assert d2.items[0].attempt == 2


def test_dispatch_core_lost_call_spends_the_loss_budget_not_the_error_budget() -> None:
    clock = Clock()
    core = _core(clock, catalog=_catalog(retry=RetryPolicy(max_attempts=2)))
    core.admit([_item("j")])
    for attempt in range(1, 5):  # four actor deaths: more than the error budget of 2
        (d,) = core.next_dispatches()
        assert d.items[0].attempt == attempt
        (out,) = core.lost(d.dispatch_id)
        assert isinstance(out, Retry) and out.failure.lost
        assert (out.errors, out.losses) == (0, attempt)
        core.apply(out, accepted=True)
        clock.now += out.delay_s
        core.fire_timers()
    (d,) = core.next_dispatches()
    (out,) = core.complete(d.dispatch_id, [StageFailure("Flaky", "x", retryable=True)])
    assert isinstance(out, Retry) and (out.errors, out.losses) == (1, 4)
    core.apply(out, accepted=True)
    clock.now += out.delay_s
    core.fire_timers()
    (d,) = core.next_dispatches()
    (out,) = core.complete(d.dispatch_id, [StageFailure("Flaky", "x", retryable=True)])
    assert isinstance(out, Fail) and (out.errors, out.losses) == (2, 4)


def test_dispatch_core_loss_budget_is_bounded() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit([_item("j")])
    outcomes = []
    for _ in range(20):
        dispatches = core.next_dispatches()
        if not dispatches:
            break
        (out,) = core.lost(dispatches[0].dispatch_id)
        outcomes.append(out)
        core.apply(out, accepted=True)
        clock.now += 60
        core.fire_timers()
    assert isinstance(outcomes[-1], Fail)
    assert outcomes[-1].losses == len(outcomes) == 8  # LOSS_RETRY.max_attempts


def test_dispatch_core_knows_where_every_held_job_is() -> None:
    clock = Clock()
    core = _core(clock, catalog=_catalog(budget=1))
    core.admit([_item("run"), _item("wait")])
    (d,) = core.next_dispatches()
    (out,) = core.complete(d.dispatch_id, [StageFailure("Flaky", "x", retryable=True)])
    assert core.settling(d.items[0].job_id)
    assert core.nowhere() == []  # ready, settling: all accounted for
    core.apply(out, accepted=True)
    assert core.nowhere() == [] and core.stats().timers == 1
    # a job whose outcome was lost (its write failed and nobody kept it) is nowhere
    (d2,) = core.next_dispatches()
    core.complete(d2.dispatch_id, [StageOutput()])
    core._settling.discard(d2.items[0].job_id)
    assert core.nowhere() == [d2.items[0].job_id]


def test_dispatch_core_counts_the_jobs_upstream_of_each_pool_of_an_accelerated_pipeline() -> None:
    cat = Catalog()
    cat.register_stage("a", "x:y", PoolSpec("a", max_in_flight=4))
    cat.register_stage("g", "x:y", PoolSpec("g", Resources(custom={"accel": 1.0})))
    cat.register_stage("b", "x:y", PoolSpec("b"))
    cat.register_pipeline(Pipeline("p", (StageSpec("a"), StageSpec("g"), StageSpec("b"))))
    clock = Clock()
    core = _core(clock, catalog=cat)
    assert core.upstream() == {}
    core.admit([_item("j1"), _item("j2"), _item("j3")])
    assert core.upstream() == {"g": 3, "b": 3}  # all three at stage a, on their way to g and b
    calls = core.next_dispatches()  # a takes all three (batch 1, budget 4: three calls)
    assert len(calls) == 3
    assert core.upstream() == {"g": 3, "b": 3}  # running at a still counts: they will reach g
    (out,) = core.complete(calls[0].dispatch_id, [StageOutput()])
    core.apply(out, accepted=True)
    assert core.upstream() == {"g": 2, "b": 3}  # one is at g now (ready there; upstream of b)
    assert core.backlog().get("g") == 1


def _accelerated(*, budget: int) -> Catalog:
    cat = Catalog()
    cat.register_stage("a", "x:y", PoolSpec("a", max_in_flight=8))
    accel = Resources(custom={"accel": 1.0})
    cat.register_stage("g", "x:y", PoolSpec("g", accel, max_in_flight=budget, batch_size=4))
    cat.register_pipeline(Pipeline("p", (StageSpec("a"), StageSpec("g"))))
    return cat


def test_dispatch_core_sends_the_last_jobs_of_an_accelerated_pool_to_idle_actors_only() -> None:
    clock = Clock()
    core = _core(clock, catalog=_accelerated(budget=8))  # say 4 actors, 2 call slots each
    core.admit([_item(f"j{i}") for i in range(3)])
    for d in core.next_dispatches(lambda pool: 4):  # stage a: no cap (not accelerated)
        (out,) = core.complete(d.dispatch_id, [StageOutput()])
        core.apply(out, accepted=True)
    assert core.backlog()["g"] == 3 and core.upstream() == {}
    idle = {"g": 1}  # three actors run a call each (and one queued behind it): one is idle
    calls = core.next_dispatches(lambda pool: idle[pool])
    assert [len(d.items) for d in calls] == [1]  # one job, to the idle actor; two wait
    assert core.next_dispatches(lambda pool: 0) == []  # no actor idle: they wait for one
    # without the launcher's count (or a pool that is not accelerated) the budget decides
    assert [len(d.items) for d in core.next_dispatches()] == [1, 1]


def test_dispatch_core_fills_an_accelerated_pools_slots_while_work_is_on_its_way() -> None:
    clock = Clock()
    core = _core(clock, catalog=_accelerated(budget=8))
    core.admit([_item(f"j{i}") for i in range(4)])
    first = core.next_dispatches(lambda pool: 0)  # four calls at stage a
    for d in first[:3]:
        (out,) = core.complete(d.dispatch_id, [StageOutput()])
        core.apply(out, accepted=True)
    assert core.backlog()["g"] == 3 and core.upstream() == {"g": 1}
    # one job is still at stage a: the slots take calls as the budget allows (queued ones too)
    calls = [d for d in core.next_dispatches(lambda pool: 0) if d.pool == "g"]
    assert [len(d.items) for d in calls] == [1, 1, 1]


def test_dispatch_core_caps_nothing_while_the_ready_jobs_fill_the_slots() -> None:
    clock = Clock()
    core = _core(clock, catalog=_accelerated(budget=2))
    core.admit([_item(f"j{i}") for i in range(4)])
    for d in core.next_dispatches():
        (out,) = core.complete(d.dispatch_id, [StageOutput()])
        core.apply(out, accepted=True)
    assert core.backlog()["g"] == 4  # four ready, two slots: not run out
    calls = core.next_dispatches(lambda pool: 0)
    assert len(calls) == 2  # both slots, though no actor is idle


def test_dispatch_core_counts_nothing_upstream_without_an_accelerated_pool() -> None:
    core = _core(Clock())
    core.admit([_item("j1")])
    assert core.upstream() == {}


def test_dispatch_core_admit_at_waits_for_a_scheduled_retry() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit_at([(_item("later"), clock.now + 30), (_item("now"), None)])
    (d,) = core.next_dispatches()
    assert d.items[0].job_id == "now"
    (out,) = core.complete(d.dispatch_id, [StageOutput()])
    core.apply(out, accepted=False)
    assert core.next_dispatches() == []
    clock.now += 31
    assert core.fire_timers() == 1
    assert [i.job_id for d in core.next_dispatches() for i in d.items] == ["later"]


def test_dispatch_core_ignores_jobs_of_unknown_pipelines() -> None:
    clock = Clock()
    core = _core(clock)
    stray = WorkItem("x", "t", "doc:x", "gone", 5, DocumentSource(kind=SourceKind.TEXT, value="x"))
    assert core.admit([stray, _item("j")]) == 1
    assert core.holds("j") and not core.holds("x")


def test_dispatch_core_adopts_a_job_whose_lease_expired_elsewhere() -> None:
    clock = Clock()
    core = _core(clock)
    item = _item("orphan")
    item.attempt, item.losses, item.needs_start = 3, 1, False
    out = core.adopt_lost(item)
    assert isinstance(out, Retry) and out.failure.error_type == "LeaseExpired"
    assert (out.attempt, out.losses) == (3, 2)
    core.apply(out, accepted=True)
    clock.now += out.delay_s
    core.fire_timers()
    (d,) = core.next_dispatches()
    assert d.items[0].attempt == 4


def test_dispatch_core_cancel_drops_waiting_jobs_only() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit([_item("run"), _item("wait")])
    (d,) = core.next_dispatches()
    running = d.items[0].job_id
    waiting = "wait" if running == "run" else "run"
    assert core.cancel(running) is False
    assert core.cancel(waiting) is True
    assert not core.holds(waiting)
    (out,) = core.complete(d.dispatch_id, [StageOutput()])
    core.apply(out, accepted=False)  # the ledger refused: the job was cancelled meanwhile
    assert not core.holds(running)
    assert core.next_dispatches() == []


def test_dispatch_core_backpressure_has_hysteresis() -> None:
    clock = Clock()
    core = _core(clock, high_watermark=4, low_watermark=2)
    core.admit([_item(f"j{i}") for i in range(3)])
    assert not core.paused
    core.admit([_item("j3")])
    assert core.paused
    core.forget("j0")
    assert core.paused  # 3 > low watermark
    core.forget("j1")
    assert not core.paused


def test_dispatch_core_admit_is_idempotent_per_job() -> None:
    clock = Clock()
    core = _core(clock)
    assert core.admit([_item("j"), _item("j")]) == 1
    assert core.stats().held == 1
