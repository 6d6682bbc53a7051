"""Stage pools on a real (local) Ray: an actor that dies while idle is found and replaced
without a job paying for it, and a pool grows only as its sizer decides, within what fits."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import ray

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.runtime.pools import StagePool
from ingest_ray.runtime.sizing import PoolLoad, plan
from ingest_ray.simulate.accelerator import FACTORY, accelerator_pool
from ingest_ray.stages.base import StageInput

NAMESPACE = "ingest-ray-tests"


def _item(doc: str, pages: int | None = None) -> StageInput:
    outputs = {} if pages is None else {"pdf_fetch": {"pdf_pages": pages}}
    return StageInput(
        job_id=doc, tenant_id="t", doc_key=doc, pipeline="simulated", stage="accelerate",
        attempt=1, source=DocumentSource(kind=SourceKind.TEXT, value=doc), outputs=outputs,
    )  # fmt: skip


def _pool(max_size: int, concurrency: int, name: str = "accelerate") -> StagePool:
    spec = accelerator_pool(
        resource=None, max_size=max_size, actor_concurrency=concurrency, name=name
    )
    return StagePool(
        spec, {"accelerate": FACTORY}, Settings(sections={"simulate": {"page_s": 0.0}}),
        runtime=f"pools-{uuid.uuid4().hex[:6]}", namespace=NAMESPACE,
    )  # fmt: skip


@pytest.fixture
def pool_of_one(local_ray: None) -> Iterator[StagePool]:
    pool = _pool(max_size=2, concurrency=2)
    yield pool
    pool.kill_all()


def test_pool_replaces_an_actor_that_died_while_idle(pool_of_one: StagePool) -> None:
    pool = pool_of_one
    (name,) = pool.stats().actors
    ref, _, _ = pool.submit("accelerate", [_item("warm")], 30)
    ray.get(ref, timeout=120)
    pool.done(name)
    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    found: list[str] = []
    deadline = time.monotonic() + 60
    while not found and time.monotonic() < deadline:
        found = pool.probe()
        time.sleep(0.1)
    assert found == [name]
    assert pool.size == 1
    assert pool.stats().actors != (name,)
    ref, actor, _ = pool.submit("accelerate", [_item("after")], 30)
    (result,) = ray.get(ref, timeout=120)
    assert actor != name
    assert result.data["pages"] == 1  # type: ignore[union-attr]


def test_an_accelerator_pool_queues_a_call_behind_the_actor_with_the_least_work(
    local_ray: None,
) -> None:
    pool = _pool(max_size=2, concurrency=2, name="mineru")  # MinerU's pool is accelerated
    try:
        pool.apply(plan([(pool.sizer, PoolLoad(ready=4, in_flight=0))], {"CPU": 2.0})["mineru"])
        assert pool.size == 2 and pool.idle() == 2
        refs = []
        ref, big, work = pool.submit("accelerate", [_item("big", pages=16)], 30)
        refs.append(ref)
        assert work == 16 and pool.idle() == 1
        ref, small, work = pool.submit("accelerate", [_item("small", pages=1)], 30)
        refs.append(ref)
        assert small != big and work == 1 and pool.idle() == 0
        # both busy: the next call waits behind the 1-page document, not the 16-page one
        ref, queued, work = pool.submit("accelerate", [_item("next", pages=3)], 30)
        refs.append(ref)
        assert queued == small and work == 3
        ray.get(refs, timeout=120)  # the calls really ran on those actors
        pool.done(small, 1)
        pool.done(small, 3)
        assert pool.idle() == 1
        ref, after, _ = pool.submit("accelerate", [_item("after")], 30)  # pages unknown: 1
        assert after == small
        ray.get(ref, timeout=120)
    finally:
        pool.kill_all()


def test_pool_probe_leaves_live_actors_alone(pool_of_one: StagePool) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert pool_of_one.probe() == []
        time.sleep(0.1)
        if all(m.probe is None for m in pool_of_one._members):  # a probe came back
            break
    assert pool_of_one.size == 1


def test_pool_grows_only_as_its_sizer_decides_and_within_what_can_be_placed(
    local_ray: None,
) -> None:
    pool = _pool(max_size=3, concurrency=1)
    try:
        refs = [pool.submit("accelerate", [_item(f"d{i}")], 30) for i in range(3)]
        assert pool.size == 1  # no growth on the call path: the calls queue on the one actor
        assert len(ray.get([r for r, _, _ in refs], timeout=120)) == 3
        for call in range(3):  # as if each job had taken 30 s: a backlog of 10 outlasts a start
            pool.done(refs[call][1], jobs=1, seconds=30.0)
        room = plan([(pool.sizer, PoolLoad(ready=10, in_flight=0))], {"CPU": 0.25})
        pool.apply(room[pool.spec.name])  # the cluster has room for one more actor only
        assert pool.size == 2 and pool.stats().target == 3
        more = plan([(pool.sizer, PoolLoad(ready=10, in_flight=0))], {"CPU": 8.0})
        pool.apply(more[pool.spec.name])
        assert pool.size == pool.stats().target == 3  # bounded by max_size
    finally:
        pool.kill_all()


def test_pool_actors_run_at_the_pools_nice(local_ray: None) -> None:
    spec = replace(accelerator_pool(resource=None, max_size=1, actor_concurrency=1), nice=7)
    pool = StagePool(
        spec, {"accelerate": FACTORY}, Settings(sections={"simulate": {"page_s": 0.0}}),
        runtime=f"pools-{uuid.uuid4().hex[:6]}", namespace=NAMESPACE,
    )  # fmt: skip
    try:
        ref, _, _ = pool.submit("accelerate", [_item("nice")], 30)
        (result,) = ray.get(ref, timeout=120)
        pid = result.data["pid"]  # type: ignore[union-attr]
        # Ray runs its workers' calls at a niceness of its own (15 by default) and its own
        # threads at 0: the pool adds 7 to every thread, up to 19
        ray_worker = int(os.environ.get("RAY_worker_niceness", "15"))  # noqa: SIM112 (Ray's name)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, ray_worker + 7)
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        assert min(os.getpriority(os.PRIO_PROCESS, t) for t in threads) >= 7
    finally:
        pool.kill_all()


def test_pool_times_its_actors_start_and_does_not_grow_for_a_backlog_that_ends_first(
    local_ray: None,
) -> None:
    pool = _pool(max_size=3, concurrency=1)
    try:
        (member,) = pool._members
        deadline = time.monotonic() + 60
        while not member.ready and time.monotonic() < deadline:
            pool.probe()
            time.sleep(0.05)
        assert member.ready and pool.sizer.start_s > 0  # spawn to first answered probe
        started = time.monotonic()
        ref, name, _ = pool.submit("accelerate", [_item("quick")], 30)
        ray.get(ref, timeout=60)
        pool.done(name, jobs=1, seconds=time.monotonic() - started)
        # ten more such jobs end long before a second worker process could start
        decision = plan([(pool.sizer, PoolLoad(ready=10))], {"CPU": 8.0})
        pool.apply(decision[pool.spec.name])
        assert pool.size == 1 and decision[pool.spec.name].wanted == 1
    finally:
        pool.kill_all()
