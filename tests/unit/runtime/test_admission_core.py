"""Admission on a fake clock: fair shares, weights, caps, quotas, aging, accelerator slots."""

from __future__ import annotations

import itertools
from collections import Counter

from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.runtime.admission_core import AdmissionCore
from ingest_ray.runtime.dispatch_core import DispatcherCore
from ingest_ray.runtime.work import Dispatch, WorkItem
from ingest_ray.stages.base import StageOutput
from ingest_ray.tenants import TenantLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _catalog(*, budget: int = 1, batch: int = 1, stages: tuple[str, ...] = ("a",)) -> Catalog:
    cat = Catalog()
    for name in stages:
        cat.register_stage(name, "x:y", PoolSpec(name, max_in_flight=budget, batch_size=batch))
    cat.register_pipeline(Pipeline("p", tuple(StageSpec(s, timeout_s=10) for s in stages)))
    return cat


def _item(job: str, tenant: str, priority: int = 5, **kw: object) -> WorkItem:
    source = DocumentSource(kind=SourceKind.TEXT, value="x")
    return WorkItem(job, tenant, f"doc:{job}", "p", priority, source, **kw)  # type: ignore[arg-type]


def _core(clock: Clock, cat: Catalog | None = None, **limits: TenantLimits) -> DispatcherCore:
    cat = cat or _catalog()
    admission = AdmissionCore(cat, limits=limits)
    return DispatcherCore(cat, clock=clock, admission=admission, aging_s=30)


def _finish(core: DispatcherCore, dispatch: Dispatch) -> None:
    for item in dispatch.items:
        item.needs_start = False  # as the loop does once the start is written
    for outcome in core.complete(dispatch.dispatch_id, [StageOutput()] * len(dispatch.items)):
        core.apply(outcome, accepted=True)


def _run(core: DispatcherCore, clock: Clock, rounds: int) -> list[str]:
    """Dispatch and finish, one round per 10 ms; answers the tenants in dispatch order."""
    order = []
    for _ in range(rounds):
        for dispatch in core.next_dispatches():
            order += [i.tenant_id for i in dispatch.items]
            _finish(core, dispatch)
        clock.now += 0.01
    return order


def test_admission_gives_a_late_small_tenant_its_fair_share_at_once() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit(_item(f"a{i}", "A") for i in range(1000))
    assert set(_run(core, clock, 100)) == {"A"}
    core.admit(_item(f"b{i}", "B") for i in range(100))
    order = _run(core, clock, 200)
    assert Counter(order) == {"A": 100, "B": 100}  # equal weights: every other dispatch
    assert all(a != b for a, b in itertools.pairwise(order))
    assert set(_run(core, clock, 50)) == {"A"}  # B is done; A has the pool again


def test_admission_shares_follow_the_weights_and_their_changes() -> None:
    clock = Clock()
    core = _core(clock, B=TenantLimits(weight=3))
    core.admit(_item(f"a{i}", "A") for i in range(2000))
    core.admit(_item(f"b{i}", "B") for i in range(2000))
    assert Counter(_run(core, clock, 400)) == {"A": 100, "B": 300}
    core.admission.set_limits(TenantLimits(), {"A": TenantLimits(weight=4)})  # at run time
    assert Counter(_run(core, clock, 500)) == {"A": 400, "B": 100}


def test_admission_shares_converge_with_fractional_weights_and_batches() -> None:
    clock = Clock()
    cat = _catalog(budget=2, batch=8)
    core = _core(clock, cat, A=TenantLimits(weight=1.5), C=TenantLimits(weight=0.5))
    for tenant in "ABC":
        core.admit(_item(f"{tenant}{i}", tenant) for i in range(3000))
    counts = Counter(_run(core, clock, 300))
    total = sum(counts.values())
    for tenant, share in {"A": 0.5, "B": 1 / 3, "C": 1 / 6}.items():
        assert abs(counts[tenant] / total - share) < 0.01, counts


def test_admission_in_flight_cap_holds_and_never_strands_started_jobs() -> None:
    clock = Clock()
    cat = _catalog(budget=10, stages=("a", "b"))
    core = _core(clock, cat, A=TenantLimits(max_in_flight=2))
    core.admit(_item(f"a{i}", "A") for i in range(6))
    core.admit(_item(f"b{i}", "B") for i in range(6))
    out = core.next_dispatches()
    assert Counter(d.items[0].tenant_id for d in out) == {"A": 2, "B": 6}
    assert core.admission.tenant_stats(clock.now, Counter())["A"].blocked == (
        "at its in-flight cap: 2 of 2 jobs running"
    )
    for d in out:
        _finish(core, d)  # a -> b: still in flight, at stage b
    second = core.next_dispatches()
    assert Counter((d.stage, d.items[0].tenant_id) for d in second) == {
        ("b", "A"): 2,
        ("b", "B"): 6,
    }  # fmt: skip  (A's started jobs go on; no new A job starts: it is still at its cap)
    for d in second:
        _finish(core, d)  # the pipeline ends: in flight drops
    assert Counter(d.items[0].tenant_id for d in core.next_dispatches()) == {"A": 2}


def test_admission_quota_keeps_jobs_queued_with_a_reason_until_the_hour_turns() -> None:
    clock = Clock()
    core = _core(clock, cat=_catalog(budget=10), A=TenantLimits(jobs_per_hour=3))
    core.admit(_item(f"a{i}", "A") for i in range(5))
    started = [i.job_id for d in core.next_dispatches() for i in d.items]
    assert len(started) == 3
    for d in core.in_flight():
        _finish(core, d)
    clock.now += 600
    assert core.next_dispatches() == []
    assert core.holds("a3") and core.holds("a4")  # queued, never dropped
    reason = core.admission.verdict("A", clock.now)
    assert reason is not None and reason.startswith("over its quota: 3 of 3 jobs/h started")
    assert "next start in 50m" in reason
    clock.now += 3000 + 10  # an hour after the first starts
    assert len([i for d in core.next_dispatches() for i in d.items]) == 2


def test_admission_aging_still_lets_old_low_priority_work_through() -> None:
    clock = Clock()
    core = _core(clock)
    core.admit([_item("old-low", "A", priority=0)])
    clock.now += 300  # 0 + 300/30 = 10 beats fresh priority-9 jobs
    core.admit(_item(f"b{i}", "B", priority=9) for i in range(50))
    first = core.next_dispatches()[0]
    assert first.items[0].job_id == "old-low"


def test_admission_passes_over_a_blocked_tenant_without_credit() -> None:
    clock = Clock()
    core = _core(clock, cat=_catalog(budget=100), A=TenantLimits(max_in_flight=1))
    core.admit(_item(f"a{i}", "A") for i in range(10))
    core.admit(_item(f"b{i}", "B") for i in range(10))
    out = core.next_dispatches()
    assert Counter(d.items[0].tenant_id for d in out) == {"A": 1, "B": 10}
    for d in out:
        _finish(core, d)
    # A blocked all along earned nothing meanwhile: now it simply takes turns again
    order = [d.items[0].tenant_id for d in core.next_dispatches()]
    assert order == ["A"]


def test_an_accelerator_pool_spreads_a_short_backlog_over_its_slots() -> None:
    clock = Clock()
    cat = Catalog()
    cat.register_stage("mineru", "x:y", PoolSpec("mineru", Resources(num_gpus=1), max_size=4,
                                                 max_in_flight=8, batch_size=8))  # fmt: skip
    cat.register_stage("chunk", "x:y", PoolSpec("chunk", max_in_flight=4, batch_size=8))
    cat.register_pipeline(Pipeline("p", (StageSpec("mineru"),)))
    cat.register_pipeline(Pipeline("c", (StageSpec("chunk"),)))
    core = _core(clock, cat)
    core.admission.set_slots({"mineru": 4})
    core.admit([_item(f"m{i}", "A") for i in range(6)])
    text = DocumentSource(kind=SourceKind.TEXT, value="x")
    core.admit([WorkItem(f"c{i}", "A", f"doc:c{i}", "c", 5, text) for i in range(6)])
    out = core.next_dispatches()
    sizes: dict[str, list[int]] = {d.pool: [] for d in out}
    for d in out:
        sizes[d.pool].append(len(d.items))
    assert sizes["mineru"] == [2, 1, 1, 1]  # every one of the four slots has work
    assert sizes["chunk"] == [6]  # a CPU pool still batches


def test_admission_offers_an_accelerator_pool_no_more_than_its_slots_small_documents_first() -> (
    None
):
    clock = Clock()
    cat = Catalog()
    gpu = PoolSpec("mineru", Resources(num_gpus=1), max_in_flight=8, batch_size=2)
    cat.register_stage("mineru", "x:y", gpu)
    cat.register_pipeline(Pipeline("p", (StageSpec("mineru"),)))
    core = _core(clock, cat)
    core.admission.set_slots({"mineru": 2})
    sizes = {"huge": 50_000_000, "s1": 100_000, "s2": 200_000, "s3": 300_000, "s4": 400_000}
    for job, size in sizes.items():
        core.admit([_item(job, "A", outputs={"pdf_fetch": {"pdf_size": size}})])
        clock.now += 0.1
    out = core.next_dispatches()
    assert len(out) == 2  # two free slots, though the budget is eight
    assert [i.job_id for d in out for i in d.items] == ["s1", "s2", "s3", "s4"]
    assert core.next_dispatches() == []
    for d in out:
        _finish(core, d)
    assert [i.job_id for d in core.next_dispatches() for i in d.items] == ["huge"]
    # and it is not starved: a big document that waited out its size penalty goes first
    core.admit([_item("big-old", "A", outputs={"pdf_fetch": {"pdf_size": 20_000_000}})])
    clock.now += 25
    core.admit([_item("small-new", "A", outputs={"pdf_fetch": {"pdf_size": 1_000}})])
    for d in core.in_flight():
        _finish(core, d)
    assert core.next_dispatches()[0].items[0].job_id == "big-old"
