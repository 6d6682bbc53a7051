"""Admission inside the Dispatcher's loop, on a fake clock and fakes: tokens taken before
dispatch and refilled from a shared bucket, limits re-read at run time, the published snapshot,
and the backlog beyond memory pulled in fair order."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ingest_ray.adapters.ratelimit import LocalRateLimiter, RateSpec, SourceRates
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.ledger.base import NewJob, QueuedGroup
from ingest_ray.metrics import RuntimeMetrics
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, StageSpec
from ingest_ray.runtime.admission_core import AdmissionCore
from ingest_ray.runtime.admission_sync import AdmissionSync, AdmissionTimings
from ingest_ray.runtime.backlog import plan_pull, water_fill
from ingest_ray.runtime.dispatch_core import DispatcherCore
from ingest_ray.runtime.loop import DispatchLoop, LoopTimings
from ingest_ray.runtime.sources import SourceMap
from ingest_ray.runtime.work import Dispatch, StageResult
from ingest_ray.stages.base import StageInput, StageOutput
from ingest_ray.tenants import AdmissionSnapshot, TenantLimits
from ingest_ray.testing import InMemoryLedger
from tests.unit.runtime.loop_fakes import (
    Clock,
    FakeInbox,
    FakeLauncher,
    LedgerWriter,
    WallClock,
    sync,
)

RATE = 2.0


class FakeStore:
    def __init__(self) -> None:
        self.limits: dict[str, TenantLimits] = {}
        self.snapshots: list[AdmissionSnapshot] = []

    async def read_limits(self) -> dict[str, TenantLimits]:
        return dict(self.limits)

    async def publish(self, snapshot: AdmissionSnapshot) -> None:
        self.snapshots.append(snapshot)


class Rig:
    def __init__(self, *, high: int = 20000, low: int = 10000, budget: int = 8) -> None:
        self.clock, self.wall = Clock(), WallClock()
        self.ledger = InMemoryLedger(clock=self.wall)
        cat = Catalog()
        cat.register_stage("api", "x:y", PoolSpec("api", max_in_flight=budget, batch_size=1))
        cat.register_pipeline(Pipeline("p", (StageSpec("api", timeout_s=10, rate_source="src"),)))
        rates = SourceRates(named={"src": RateSpec(RATE, 1.0)})
        admission = AdmissionCore(cat, sources=SourceMap(rates))
        core = DispatcherCore(
            cat, clock=self.clock, admission=admission, high_watermark=high, low_watermark=low
        )
        self.launched: list[tuple[float, Dispatch, list[StageInput]]] = []
        self.launcher = FakeLauncher(self._run)
        self.store = FakeStore()
        self.sync = AdmissionSync(
            runtime="rt", bank=LocalRateLimiter(rates, clock=self.clock), store=self.store,
            timings=AdmissionTimings(limits_s=1.0, publish_s=1.0, slots_s=1.0),
            wall=self.wall.timestamp,
        )  # fmt: skip
        self.loop = DispatchLoop(
            cat, Settings(topic_results="res", topic_mapping="map", topic_deadletter="dlq"),
            core=core, ledger=self.ledger, writer=LedgerWriter(self.ledger),
            launcher=self.launcher, inbox=FakeInbox(), metrics=RuntimeMetrics(),
            timings=LoopTimings(inbox_s=0, reconcile_s=3600, maintain_s=3600, idle_wait_s=0.001),
            wall=self.wall.timestamp, admission=self.sync,
        )  # fmt: skip

    def _run(self, dispatch: Dispatch, inputs: list[StageInput]) -> list[StageResult]:
        self.launched.append((self.clock.now, dispatch, inputs))
        return [StageOutput() for _ in inputs]

    def create(self, doc: str, tenant: str = "t", priority: int = 5) -> str:
        source = DocumentSource(kind=SourceKind.TEXT, value=doc).model_dump(mode="json")
        job = NewJob(tenant, doc, "p", priority=priority, metadata={"source": source})
        return self.ledger.create(job).job_id

    def completed(self) -> int:
        return self.ledger.counts()[_status("completed")]

    async def until(self, predicate: Any, *, tick: float, steps: int = 5000) -> None:
        for _ in range(steps):
            if predicate():
                return
            self.clock.now += tick
            self.wall.advance(tick)
            await self.loop.step()
        raise AssertionError("condition not met")


def _status(name: str) -> Any:
    from ingest_ray.states import JobStatus

    return JobStatus(name)


@sync
async def test_jobs_take_a_token_before_dispatch_and_wait_on_the_timer_heap() -> None:
    r = Rig()
    for i in range(10):
        r.create(f"doc-{i}")
    await r.loop.start()
    await r.until(lambda: len(r.launched) >= 2, tick=0.01)
    stats = r.loop.core.stats()
    assert stats.timers >= 7  # the rest wait for tokens, holding no worker
    assert stats.in_flight.get("api", 0) <= 2
    await r.until(lambda: r.completed() == 10, tick=0.01)
    times = [t for t, _, _ in r.launched]
    # never more than the bucket grants: burst 1 + rate * window, in any window
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 1 + RATE * 1.0
    assert times[-1] - times[0] >= (10 - 1) / RATE - 0.05
    assert all(inputs[0].reserved == ("src",) for _, _, inputs in r.launched)
    assert len(r.launched) == 10  # each job once: a token wait is not a failed try


@sync
async def test_waiting_for_a_token_is_published_and_limits_apply_without_restart() -> None:
    r = Rig()
    for i in range(6):
        r.create(f"a-{i}", tenant="A")
        r.create(f"b-{i}", tenant="B")
    await r.loop.start()
    await r.until(lambda: len(r.store.snapshots) >= 2, tick=0.05)
    snapshot = r.store.snapshots[-1]
    assert snapshot.sources["src"].waiting > 0
    assert snapshot.note_for("A", "src") is not None
    assert set(snapshot.tenants) == {"A", "B"}
    r.store.limits = {"B": TenantLimits(jobs_per_hour=1)}  # read within limits_s
    before = len(r.launched)

    def tenants() -> Counter[str]:
        return Counter(d.items[0].tenant_id for _, d, _ in r.launched)

    await r.until(lambda: tenants()["A"] == 6, tick=0.05)
    await r.until(lambda: bool(r.store.snapshots[-1].tenants["B"].blocked), tick=0.05)
    note = r.store.snapshots[-1].note_for("B")
    assert note is not None and note.startswith("over its quota")
    b_after = Counter(d.items[0].tenant_id for _, d, _ in r.launched[before + 2 :])["B"]
    assert b_after == 0  # B used its hour (limits apply within a couple of rounds)
    core = r.loop.core
    held_b = [j for j in core.held_ids() if (i := core.item(j)) is not None and i.tenant_id == "B"]
    assert len(held_b) == 6 - tenants()["B"]  # the rest of B's jobs wait, queued, not dropped


def test_water_fill_shares_room_by_weight_and_passes_on_what_a_tenant_cannot_use() -> None:
    weights = {"A": 1.0, "B": 3.0, "C": 1.0}.__getitem__
    assert water_fill({"A": 1000, "B": 1000}, weights, 100) == {"A": 25, "B": 75}
    assert water_fill({"A": 1000, "B": 10, "C": 1000}, weights, 100) == {"A": 45, "B": 10, "C": 45}
    assert water_fill({"A": 3}, weights, 100) == {"A": 3}
    assert sum(water_fill({"A": 7, "B": 9, "C": 11}, weights, 20).values()) == 20


def test_plan_pull_takes_aged_priority_within_a_tenant() -> None:
    old, new = "01F00000000000000000000000", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
    groups = [
        QueuedGroup("A", 9, 5, new), QueuedGroup("A", 1, 50, old), QueuedGroup("B", 5, 50, new)
    ]  # fmt: skip
    plan = plan_pull(groups, {("A", 9): 5}, 20, weight=lambda _: 1.0, now_s=2e9, aging_s=30)
    # A's priority-9 jobs are all held already; its old priority-1 jobs come before anything
    assert [(g.tenant_id, g.priority, n) for g, n in plan] == [("A", 1, 10), ("B", 5, 10)]


@sync
async def test_backlog_beyond_memory_is_pulled_per_tenant_not_in_arrival_order() -> None:
    r = Rig(high=10, low=5, budget=1)
    older = [r.create(f"a-{i}", tenant="A") for i in range(40)]  # A's flood came first
    later = [r.create(f"b-{i}", tenant="B") for i in range(4)]
    await r.loop.start()
    held = set(r.loop.core.held_ids())
    assert len(held) == 10
    assert set(later) <= held  # B's jobs are in memory although 40 of A's are older
    assert len(held & set(older)) == 6
    await r.until(lambda: r.completed() == 44, tick=0.6)
    first = [d.items[0].tenant_id for _, d, _ in r.launched][:8]
    assert Counter(first)["B"] == 4  # B had its share of the first dispatches
