"""Admission on the real runtime (Kafka, Redis, Ray): rate-limited jobs wait in the Dispatcher,
not in the actor; two tenants share a pool fairly; limits change at run time; a job over its
quota stays queued with the reason published."""

from __future__ import annotations

import time
from typing import Any

import ray
import redis

from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.ledger import JobFilter
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.states import JobStatus
from ingest_ray.tenants import AdmissionSnapshot, TenantLimits, TenantStore, read_snapshot
from tests.integration.runtime.conftest import Env

LIMITED = "ingest_ray.testing_limited:RateLimitedStage"
SCRIPTED = "ingest_ray.testing:ScriptedStage"
RATE = 10.0


def _request(doc: str, tenant: str, pipeline: str, **metadata: Any) -> IngestRequest:
    return IngestRequest(
        tenant_id=tenant, doc_key=doc, pipeline=pipeline, metadata=metadata,
        source=DocumentSource(kind=SourceKind.TEXT, value=doc),
    )  # fmt: skip


def _limited_catalog() -> Catalog:
    """Two pipelines on one pool of one actor with 16 slots: ``limited`` needs a token of
    ``src`` per try, ``free`` needs none."""
    cat = Catalog()
    pool = PoolSpec("lim", Resources(num_cpus=0.25), min_size=1, max_size=1, max_in_flight=16,
                    actor_concurrency=16)  # fmt: skip
    cat.register_stage("lim", LIMITED, pool)
    cat.stages["free"] = LIMITED
    cat.register_pipeline(Pipeline("limited", (StageSpec("lim", rate_source="src"),)))
    cat.register_pipeline(Pipeline("free", (StageSpec("free", pool="lim"),)))
    return cat


def _done(env: Env, tenant: str | None = None) -> int:
    return env.ledger.counts(tenant_id=tenant)[JobStatus.COMPLETED]


def _jobs(env: Env, tenant: str) -> list[Any]:
    return env.ledger.list_jobs(JobFilter(tenant_id=tenant), limit=1000).items


def test_jobs_waiting_for_tokens_leave_the_actor_free(env: Env) -> None:
    settings = env.settings.model_copy(
        update={"sections": {"adapters": {"source_rates": {"src": RATE}}}}
    )
    runtime = Runtime(settings, _limited_catalog(), env.options)
    runtime.start()
    runtime.start_ingress(1, tag="t")
    waiting_seen, free_done_at = 0, None
    try:
        env.send(
            *[_request(f"lim-{i}", "t", "limited", source="src", sleep_s=0.2) for i in range(50)]
        )
        deadline = time.monotonic() + 90
        while _done(env, "t") < 50 and time.monotonic() < deadline:
            stats = ray.get(runtime.dispatcher.stats.remote(), timeout=30)
            waiting_seen = max(waiting_seen, stats.timers)
            if waiting_seen >= 30 and free_done_at is None and not _jobs(env, "f"):
                env.send(*[_request(f"free-{i}", "f", "free", sleep_s=0.2) for i in range(5)])
            if free_done_at is None and _done(env, "f") == 5:
                free_done_at = _done(env, "t")
            time.sleep(0.1)
        env.wait_for(lambda: _done(env) == 55)
    finally:
        runtime.shutdown()
    assert waiting_seen >= 30  # the jobs without a token waited in the Dispatcher's timer heap
    concurrent = [int(v) for v in env.redis.hgetall(f"{settings.redis_prefix}limited:max").values()]
    # one actor with 16 call slots, yet never more calls at once than tokens came in
    assert concurrent and max(concurrent) <= 4, concurrent
    assert free_done_at is not None and free_done_at < 45  # the free jobs did not queue behind
    starts = sorted(float(t) for t in env.redis.lrange(f"{settings.redis_prefix}limited:starts",
                                                        0, -1))  # fmt: skip
    limited_span = starts[-1] - starts[0]
    assert limited_span >= (50 - 1) / RATE * 0.8  # the shared bucket paced them
    for job in _jobs(env, "t"):  # each ran once: the Dispatcher's token was the stage's token
        history = env.ledger.get(job.job_id).history
        assert not [e for e in history if "retry_in_s" in e.data], history[-1]


def _fair_catalog() -> Catalog:
    cat = Catalog()
    pool = PoolSpec("work", Resources(num_cpus=0.25), min_size=1, max_size=1, max_in_flight=2,
                    actor_concurrency=2)  # fmt: skip
    cat.register_stage("work", SCRIPTED, pool)
    cat.register_pipeline(Pipeline("fair", (StageSpec("work", timeout_s=30),)))
    return cat


def _snapshot(env: Env) -> AdmissionSnapshot | None:
    return read_snapshot(env.redis, env.settings.redis_prefix, env.options.name)


def test_two_tenants_share_a_pool_and_limits_change_at_run_time(env: Env) -> None:
    runtime = Runtime(env.settings, _fair_catalog(), env.options)
    runtime.start()
    runtime.start_ingress(1, tag="t")
    script = {"sleep_s": {"work": 0.05}}
    store = TenantStore(redis.Redis.from_url(env.settings.redis_url), env.settings.redis_prefix)
    try:
        env.send(*[_request(f"a-{i}", "A", "fair", **script) for i in range(150)])
        env.wait_for(lambda: _done(env, "A") >= 10)
        env.send(*[_request(f"b-{i}", "B", "fair", **script) for i in range(15)])
        env.wait_for(lambda: _done(env, "B") == 15)
        a_queued = env.ledger.counts(tenant_id="A")[JobStatus.QUEUED]
        # at run time: A may run one job at a time, C two jobs an hour
        store.set("A", default=TenantLimits(), max_in_flight=1)
        store.set("C", default=TenantLimits(), jobs_per_hour=2)
        # a lowered cap preempts nothing: the jobs A started under the old one finish first
        env.wait_for(
            lambda: (
                (s := _snapshot(env)) is not None
                and s.tenants.get("A") is not None
                and s.tenants["A"].max_in_flight == 1
                and s.tenants["A"].in_flight <= 1
            )
        )
        in_flight = []
        for _ in range(15):
            snap = _snapshot(env)
            assert snap is not None
            in_flight.append(snap.tenants["A"].in_flight)
            time.sleep(0.2)
        env.send(*[_request(f"c-{i}", "C", "fair", **script) for i in range(4)])
        env.wait_for(lambda: _done(env, "C") == 2)
        env.wait_for(lambda: (s := _snapshot(env)) is not None and bool(s.note_for("C")))
        snap = _snapshot(env)
        time.sleep(1.0)
        c_counts = env.ledger.counts(tenant_id="C")
    finally:
        runtime.shutdown()
        store._r.close()
    assert a_queued >= 60  # B's 15 jobs went through while most of A's flood still waited
    assert max(in_flight) <= 1 and sum(in_flight) > 0  # the new cap held, and A kept going
    assert snap is not None
    note = snap.note_for("C")
    assert note is not None and note.startswith("over its quota: 2 of 2 jobs/h started")
    assert (c_counts[JobStatus.COMPLETED], c_counts[JobStatus.QUEUED]) == (2, 2)  # not dropped
