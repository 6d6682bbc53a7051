"""Pool sizing on a fake clock, without Ray."""

from __future__ import annotations

import pytest

from ingest_ray.config import Settings
from ingest_ray.pipelines.builtin import builtin_pools
from ingest_ray.pipelines.catalog import PoolSpec
from ingest_ray.pipelines.spec import Resources
from ingest_ray.runtime.sizing import (
    Decision,
    PoolLoad,
    PoolShape,
    PoolSizer,
    autoscaler_bundles,
    default_max_size,
    placeable,
    plan,
    resource_shape,
    spread_batch,
    wanted_size,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def embed_shape(**changes: object) -> PoolShape:
    base: dict[str, object] = {
        "name": "embed", "resources": {"CPU": 1.0}, "min_size": 1, "max_size": 8,
        "actor_concurrency": 1, "batch_size": 32,
    }  # fmt: skip
    return PoolShape(**{**base, **changes})  # type: ignore[arg-type]


def sizer_with(shape: PoolShape, actors: int, clock: FakeClock, grace: float = 30.0) -> PoolSizer:
    sizer = PoolSizer(shape, idle_grace_s=grace, clock=clock)
    for i in range(actors):
        sizer.actor_started(f"{shape.name}/{i}")
    return sizer


def slow(sizer: PoolSizer, job_s: float = 60.0) -> PoolSizer:
    """``sizer`` after a call that took ``job_s`` a job: growth pays for an actor's start."""
    sizer.call_finished("earlier", jobs=1, seconds=job_s)
    return sizer


def test_sizing_wanted_size_is_backlog_over_what_one_actor_takes() -> None:
    shape = embed_shape(actor_concurrency=2, batch_size=10, min_size=0)
    assert wanted_size(shape, PoolLoad()) == 0
    assert wanted_size(shape, PoolLoad(ready=1)) == 1  # one call, one actor
    assert wanted_size(shape, PoolLoad(ready=20)) == 1  # two calls fit one actor
    assert wanted_size(shape, PoolLoad(ready=21)) == 2  # a third call needs a second actor
    assert wanted_size(shape, PoolLoad(ready=20, in_flight=2)) == 2
    assert wanted_size(shape, PoolLoad(ready=10_000)) == 8  # max_size


def test_sizing_an_accelerator_pool_gives_each_ready_job_a_slot() -> None:
    gpu = PoolShape(name="mineru", resources={"CPU": 1.0, "GPU": 1.0}, min_size=1, max_size=4,
                    actor_concurrency=2, batch_size=8, spread=True)  # fmt: skip
    # 6 small documents: batched by 8 they would fit one actor while three GPUs idle
    assert wanted_size(embed_shape(max_size=4, actor_concurrency=2, batch_size=8),
                       PoolLoad(ready=6)) == 1  # fmt: skip
    assert wanted_size(gpu, PoolLoad(ready=6)) == 3
    assert wanted_size(gpu, PoolLoad(ready=6, in_flight=2)) == 4
    assert PoolShape.from_spec(PoolSpec("mineru", Resources(num_gpus=1.0))).spread
    assert not PoolShape.from_spec(PoolSpec("embed", Resources(num_cpus=1.0))).spread


def test_sizing_an_accelerator_pool_looks_ahead_to_the_jobs_upstream() -> None:
    gpu = PoolShape(name="mineru", resources={"CPU": 1.0, "GPU": 1.0}, min_size=1, max_size=4,
                    actor_concurrency=1, batch_size=8, spread=True)  # fmt: skip
    # nothing is ready yet, but 3 jobs are on the stages before it: start 3 actors now
    assert wanted_size(gpu, PoolLoad(ready=0, upstream=3)) == 3
    assert wanted_size(gpu, PoolLoad(ready=1, in_flight=1, upstream=500)) == 4  # max_size
    # a pool that does not spread (a CPU pool of the same pipeline) counts them in batches
    cpu = embed_shape(max_size=4, actor_concurrency=1, batch_size=32)
    assert wanted_size(cpu, PoolLoad(ready=1, upstream=40)) == 2
    assert wanted_size(cpu, PoolLoad(ready=1, upstream=0)) == 1  # nothing on its way: the backlog


def test_sizing_the_look_ahead_lets_go_of_idle_actors_during_an_upstream_stall() -> None:
    clock = FakeClock()
    gpu = PoolShape(name="mineru", resources={"GPU": 1.0}, min_size=1, max_size=4,
                    actor_concurrency=1, batch_size=8, spread=True)  # fmt: skip
    sizer = sizer_with(gpu, 1, clock, grace=30.0)
    stalled = PoolLoad(ready=0, upstream=300)  # e.g. metadata waiting out a rate limit
    first = sizer.decide(stalled, {"GPU": 3.0})
    assert (first.wanted, first.start) == (4, 3)  # look ahead: start them for the work coming
    for i in range(1, 4):
        sizer.actor_started(f"mineru/{i}")
    clock.advance(29)
    assert sizer.decide(stalled, {"GPU": 0.0}).release == ()  # within the grace period
    clock.advance(2)  # 31 s and nothing has reached the pool: the look-ahead stops holding
    held = sizer.decide(stalled, {"GPU": 0.0})
    assert held.wanted == 1 and len(held.release) == 3  # back to min_size
    for name in held.release:
        sizer.actor_gone(name)
    assert sizer.decide(stalled, {"GPU": 3.0}).start == 0  # and does not start them again
    # a job reaches the pool: the look-ahead counts again
    moving = sizer.decide(PoolLoad(ready=1, upstream=299), {"GPU": 3.0})
    assert (moving.wanted, moving.start) == (4, 3)
    # a CPU pool of the pipeline looks ahead within the same bound
    cpu = slow(sizer_with(embed_shape(max_size=4, batch_size=1), 1, clock))
    assert cpu.decide(stalled, {"CPU": 4.0}).wanted == 4
    clock.advance(31)
    assert cpu.decide(stalled, {"CPU": 4.0}).wanted == 1


def test_sizing_spread_batch_shares_the_backlog_over_the_call_slots() -> None:
    assert spread_batch(8, ready=6, call_slots=8) == 1
    assert spread_batch(8, ready=6, call_slots=4) == 2
    assert spread_batch(8, ready=100, call_slots=8) == 8  # a deep backlog: full batches
    assert spread_batch(8, ready=20, call_slots=8) == 3  # the end of one: calls shrink
    assert spread_batch(8, ready=0, call_slots=3) == 1
    assert spread_batch(8, ready=50, call_slots=0) == 8


def test_sizing_wanted_size_keeps_min_size_and_the_call_budget() -> None:
    assert wanted_size(embed_shape(min_size=2), PoolLoad()) == 2
    budget = embed_shape(actor_concurrency=4, max_in_flight=8)
    assert wanted_size(budget, PoolLoad(ready=10_000)) == 2  # 8 calls / 4 per actor
    # the embed pool: budget 2 below concurrency 4 still allows one actor
    assert wanted_size(embed_shape(actor_concurrency=4, max_in_flight=2), PoolLoad(ready=99)) == 1


def test_sizing_from_spec_reads_the_catalog_pool() -> None:
    spec = PoolSpec("embed", Resources(num_cpus=1.0), min_size=1, max_size=2, max_in_flight=2,
                    batch_size=32, actor_concurrency=4)  # fmt: skip
    shape = PoolShape.from_spec(spec, max_size=8, budget=False)
    assert shape.resources == {"CPU": 1.0}
    assert (shape.min_size, shape.max_size, shape.max_in_flight) == (1, 8, None)
    assert shape.jobs_per_actor == 128
    assert PoolShape.from_spec(spec).max_in_flight == 2


def test_sizing_resource_shape_names_resources_as_ray_does() -> None:
    res = Resources(num_cpus=1.0, num_gpus=0.5, custom={"accel": 1.0, "unused": 0.0})
    assert resource_shape(res) == {"CPU": 1.0, "GPU": 0.5, "accel": 1.0}
    assert resource_shape(Resources(num_cpus=0)) == {}


def test_sizing_placeable_counts_per_node_and_for_the_cluster() -> None:
    assert placeable({"CPU": 1.0}, {"CPU": 3.5, "GPU": 0.0}) == 3
    assert placeable({"CPU": 1.0, "GPU": 1.0}, {"CPU": 8.0}) == 0  # no GPU anywhere
    # two nodes with one free GPU each but CPUs on only one of them: one actor fits
    nodes = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 0.5, "GPU": 1.0}]
    assert placeable({"CPU": 1.0, "GPU": 1.0}, nodes) == 1
    assert placeable({"CPU": 0.25}, {"CPU": 0.75}) == 3
    assert placeable({}, {"CPU": 0.0}) is None  # asks for nothing: always fits


def test_sizing_grows_to_the_backlog_within_what_fits() -> None:
    clock = FakeClock()
    sizer = slow(sizer_with(embed_shape(), 1, clock))
    decision = sizer.decide(PoolLoad(ready=32 * 5, in_flight=1), {"CPU": 3.0})
    assert decision.wanted == 6
    assert decision.start == 3  # 3 free CPUs
    assert decision.unplaceable == 2
    assert decision.target == 4
    assert decision.release == ()
    assert len(decision.bundles) == 6 and decision.bundles[0] == {"CPU": 1.0}


def test_sizing_asks_nothing_of_the_autoscaler_when_everything_fits() -> None:
    sizer = slow(sizer_with(embed_shape(), 1, FakeClock()))
    decision = sizer.decide(PoolLoad(ready=64), {"CPU": 8.0})
    assert (decision.start, decision.unplaceable, decision.bundles) == (1, 0, ())


def test_sizing_releases_idle_actors_only_after_the_grace_period() -> None:
    clock = FakeClock()
    sizer = sizer_with(embed_shape(), 4, clock, grace=30.0)
    for i in range(4):
        sizer.call_started(f"embed/{i}")
    clock.advance(5)
    for i in range(4):
        sizer.call_finished(f"embed/{i}")
    clock.advance(29)
    assert sizer.decide(PoolLoad(), {"CPU": 4.0}).release == ()  # 29 s idle: not yet
    clock.advance(2)
    decision = sizer.decide(PoolLoad(), {"CPU": 4.0})
    assert len(decision.release) == 3  # min_size 1 stays
    assert decision.target == 1


def test_sizing_keeps_busy_actors_and_those_the_backlog_needs() -> None:
    clock = FakeClock()
    sizer = sizer_with(embed_shape(), 3, clock, grace=10.0)
    sizer.call_started("embed/0")  # busy the whole time
    clock.advance(60)
    decision = sizer.decide(PoolLoad(ready=32, in_flight=1), {"CPU": 0.0})
    assert decision.wanted == 2
    assert decision.release in {("embed/1",), ("embed/2",)}
    assert "embed/0" not in sizer.decide(PoolLoad(in_flight=1), {}).release


def test_sizing_releases_the_longest_idle_first() -> None:
    clock = FakeClock()
    sizer = sizer_with(embed_shape(min_size=0), 0, clock, grace=10.0)
    sizer.actor_started("embed/old")
    clock.advance(20)
    sizer.actor_started("embed/new")
    clock.advance(15)
    decision = sizer.decide(PoolLoad(ready=1), {"CPU": 0.0})  # one actor still wanted
    assert decision.release == ("embed/old",)


def test_sizing_a_new_actor_is_not_released_before_the_grace_period() -> None:
    clock = FakeClock()
    sizer = sizer_with(embed_shape(min_size=0), 2, clock, grace=30.0)
    clock.advance(10)
    assert sizer.decide(PoolLoad(), {"CPU": 0.0}).release == ()


def test_sizing_forgets_actors_that_are_gone() -> None:
    clock = FakeClock()
    sizer = sizer_with(embed_shape(min_size=0), 2, clock, grace=1.0)
    sizer.actor_gone("embed/0")
    sizer.call_finished("embed/0")  # a late answer of a dead actor changes nothing
    clock.advance(5)
    assert sizer.size == 1
    assert sizer.decide(PoolLoad(), {}).release == ("embed/1",)


def test_sizing_accelerator_pool_backlog_becomes_autoscaler_bundles() -> None:
    clock = FakeClock()
    gpu = PoolShape("mineru", {"CPU": 1.0, "GPU": 1.0}, min_size=0, max_size=4,
                    actor_concurrency=2, batch_size=1)  # fmt: skip
    sizer = PoolSizer(gpu, clock=clock)
    decision = sizer.decide(PoolLoad(ready=50), {"CPU": 2.0})  # a CPU-only cluster
    assert (decision.wanted, decision.start, decision.unplaceable) == (4, 0, 4)
    assert autoscaler_bundles([decision]) == [{"CPU": 1.0, "GPU": 1.0}] * 4


def test_sizing_plan_shares_free_resources_in_pool_order() -> None:
    clock = FakeClock()
    chunk = PoolSizer(PoolShape("chunk", {"CPU": 0.5}, min_size=0, max_size=4,
                                batch_size=8), clock=clock)  # fmt: skip
    embed = PoolSizer(embed_shape(min_size=0), clock=clock)
    slow(chunk), slow(embed)
    free = {"CPU": 2.0}
    decisions = plan([(embed, PoolLoad(ready=32 * 3)), (chunk, PoolLoad(ready=40))], free)
    assert decisions["embed"].start == 2  # takes both CPUs first
    assert decisions["chunk"].start == 0 and decisions["chunk"].unplaceable == 4
    assert free == {"CPU": 2.0}  # the caller's snapshot is left alone
    bundles = autoscaler_bundles(decisions.values())
    assert bundles.count({"CPU": 1.0}) == 3 and bundles.count({"CPU": 0.5}) == 4


def test_sizing_plan_places_per_node() -> None:
    clock = FakeClock()
    gpu = PoolSizer(PoolShape("mineru", {"CPU": 1.0, "GPU": 1.0}, min_size=0, max_size=4),
                    clock=clock)  # fmt: skip
    embed = slow(PoolSizer(embed_shape(min_size=0), clock=clock))
    nodes = [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 1.0}]
    decisions = plan([(gpu, PoolLoad(ready=4)), (embed, PoolLoad(ready=32 * 4))], nodes)
    assert decisions["mineru"].start == 1
    assert decisions["embed"].start == 2  # one CPU left on each node


@pytest.mark.parametrize(
    ("name", "expected"),
    [("embed", 16), ("chunk", 16), ("mineru", 16), ("metadata", 4), ("index", 1)],
)
def test_sizing_default_max_size_follows_the_machine(name: str, expected: int) -> None:
    pools = {p.name: p for p in builtin_pools(Settings())}
    assert default_max_size(pools[name], {"CPU": 16.0, "GPU": 0.0}) == expected


def test_sizing_default_max_size_of_the_accelerator_pool_is_its_gpus() -> None:
    gpu_settings = Settings(mineru_num_gpus=1.0)
    mineru = next(p for p in builtin_pools(gpu_settings) if p.name == "mineru")
    assert default_max_size(mineru, {"CPU": 64.0, "GPU": 3.0}) == 3
    custom = next(p for p in builtin_pools(Settings(mineru_resource="accel"))
                  if p.name == "mineru")  # fmt: skip
    assert default_max_size(custom, {"CPU": 8.0, "accel": 4.0}) == 4
    assert default_max_size(custom, {"CPU": 8.0}) == 1  # none yet: one, for the autoscaler


def test_sizing_rejects_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="min_size"):
        PoolShape("x", min_size=3, max_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        PoolShape("x", batch_size=0)


def test_sizing_decision_target_counts_starts_and_releases() -> None:
    decision = Decision("p", size=3, wanted=1, start=0, release=("a", "b"), unplaceable=0,
                        bundles=())  # fmt: skip
    assert decision.target == 1


def test_pool_spec_nice_is_a_unix_niceness_and_the_pools_after_the_parser_use_it() -> None:
    with pytest.raises(ValueError, match="nice"):
        PoolSpec("embed", nice=20)
    pools = {p.name: p for p in builtin_pools(Settings(downstream_nice=5))}
    assert {n for n, p in pools.items() if p.nice == 5} == {"chunk", "embed", "index", "mapping"}
    assert all(p.nice == 0 for p in builtin_pools(Settings(downstream_nice=0)))


def test_sizing_growth_waits_for_the_first_call_to_show_what_a_job_takes() -> None:
    clock = FakeClock()
    empty = PoolSizer(embed_shape(min_size=0), clock=clock)
    assert empty.decide(PoolLoad(ready=32 * 4), {"CPU": 8.0}).start == 1  # one actor, not four
    sizer = sizer_with(embed_shape(), 1, clock)
    held = sizer.decide(PoolLoad(ready=32 * 4), {"CPU": 8.0})
    assert (held.wanted, held.start, held.bundles) == (1, 0, ())  # nothing asked of the autoscaler
    sizer.call_finished("embed/0", jobs=32, seconds=8.0)  # 0.25 s a job: 32 s of work left
    grown = sizer.decide(PoolLoad(ready=32 * 4), {"CPU": 8.0})
    assert (grown.wanted, grown.start) == (4, 3)
    # min_size still holds: a pool that lost its actors gets them back at once
    assert (
        sizer_with(embed_shape(min_size=3), 1, clock)
        .decide(PoolLoad(ready=500), {"CPU": 8.0})
        .start
        == 2
    )


def test_sizing_a_backlog_that_ends_before_a_new_actor_is_up_starts_none() -> None:
    clock = FakeClock()
    shape = PoolShape("metadata", {"CPU": 0.25}, min_size=1, max_size=4, actor_concurrency=16)
    sizer = sizer_with(shape, 1, clock)
    sizer.call_finished("metadata/0", jobs=1, seconds=0.05)
    assert sizer.drain_s(PoolLoad(ready=55)) == pytest.approx(55 * 0.05 / 16)
    assert (
        sizer.decide(PoolLoad(ready=55), {"CPU": 4.0}).start == 0
    )  # done in 0.2 s, a start takes 2
    assert sizer.decide(PoolLoad(ready=5_000), {"CPU": 4.0}).start == 3  # 16 s of work: worth it


def test_sizing_learns_how_long_an_actor_takes_to_start() -> None:
    clock = FakeClock()
    sizer = sizer_with(embed_shape(), 1, clock)
    sizer.call_finished("embed/0", jobs=10, seconds=1.0)  # 0.1 s a job
    load = PoolLoad(ready=100)  # 10 s of work for the one actor
    assert sizer.decide(load, {"CPU": 8.0}).start == 3  # against the 2 s assumed at first
    sizer.actor_ready(30.0)  # a model that takes 30 s to load
    assert sizer.start_s == 30.0
    assert sizer.decide(load, {"CPU": 8.0}).start == 0
    sizer.actor_ready(2.0)
    assert sizer.start_s == pytest.approx(30.0 + 0.3 * (2.0 - 30.0))  # a moving average


def test_sizing_an_accelerator_pool_grows_before_any_call_has_ended() -> None:
    gpu = PoolShape("mineru", {"CPU": 1.0, "GPU": 1.0}, min_size=1, max_size=4, actor_concurrency=1)
    spread = PoolShape("mineru", {"CPU": 1.0}, min_size=1, max_size=4, spread=True)
    for shape in (gpu, spread):
        assert shape.accelerator
        sizer = sizer_with(shape, 1, FakeClock())
        assert sizer.decide(PoolLoad(ready=0, upstream=40), {"CPU": 8.0, "GPU": 8.0}).start == 3
    assert not embed_shape().accelerator
