"""Priorities, actor deaths and cancellation on the real runtime."""

from __future__ import annotations

import ray

from ingest_ray.control import ControlInbox, JobControl
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger import JobFilter
from ingest_ray.states import JobStatus
from tests.integration.runtime.conftest import Env, request


def _control(env: Env) -> JobControl:
    return JobControl(
        env.ledger, ControlInbox(env.redis, RedisKeys(env.settings.redis_prefix), env.options.name)
    )


def _job_id(env: Env, doc: str) -> str:
    return env.ledger.list_jobs(JobFilter(doc_key=doc, tenant_id="t")).items[0].job_id


def _serial(env: Env):  # type: ignore[no-untyped-def]
    return env.catalog().with_pool("metadata", max_in_flight=1, batch_size=1, max_size=1)


def test_priority_order_is_observed_under_load(env: Env) -> None:
    runtime = env.runtime(_serial(env))
    runtime.start()
    runtime.start_ingress(1, tag="t")
    priorities = [3, 9, 0, 5, 7, 1, 8, 2, 6, 4] * 2
    try:
        env.send(request("blocker", sleep_s={"metadata": 3}))
        env.wait_for(lambda: env.runs().get("blocker|metadata", 0) == 1)
        env.send(*[request(f"p{i}", priority=p) for i, p in enumerate(priorities)])
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == 21)
    finally:
        runtime.shutdown()
    jobs = [j for j in env.jobs() if j.doc_key != "blocker"]
    started = [j.priority for j in sorted(jobs, key=lambda j: j.started_at)]  # type: ignore[arg-type, return-value]
    assert started == sorted(priorities, reverse=True)


def test_killed_stage_actor_reruns_the_stage_and_completes_once(env: Env) -> None:
    runtime = env.runtime()
    runtime.start()
    runtime.start_ingress(1, tag="t")
    try:
        env.send(request("victim", sleep_s={"chunk": 4}))
        env.wait_for(lambda: env.runs().get("victim|chunk", 0) == 1)
        (actor,) = ray.get(runtime.dispatcher.stats.remote()).pools["chunk"].actors
        ray.kill(ray.get_actor(actor, namespace=env.options.namespace))
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == 1)
    finally:
        runtime.shutdown()
    job = env.ledger.get(_job_id(env, "victim"))
    assert env.runs()["victim|chunk"] == 2
    assert all(n == 1 for k, n in env.runs().items() if not k.endswith("|chunk"))
    assert set(env.effects()) == {f"victim|{s}" for s in ("metadata", "chunk", "embed", "index")}
    lost = [e for e in job.history if e.error is not None and e.error.kind == "lost"]
    assert len(lost) == 1
    assert lost[0].data["failed_attempt"] == 1
    done = next(e for e in job.history if e.data.get("completed") == "chunk")
    assert done.attempts == 1  # the stage after chunk starts at try 1; chunk itself needed 2
    assert job.outputs["chunk"]["attempt"] == 2


def test_cancel_a_queued_and_a_running_job(env: Env) -> None:
    runtime = env.runtime(_serial(env))
    runtime.start()
    runtime.start_ingress(1, tag="t")
    control = _control(env)
    try:
        env.send(request("running", sleep_s={"metadata": 3}))
        env.wait_for(lambda: env.runs().get("running|metadata", 0) == 1)
        env.send(request("waiting"))
        env.wait_for(lambda: len(env.jobs()) == 2)
        waiting = control.cancel(_job_id(env, "waiting"))
        running = control.cancel(_job_id(env, "running"))
        assert waiting.changed
        assert running.changed
        assert control.cancel(waiting.job.job_id).changed is False  # idempotent
        env.send(request("after"))
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == 1)
    finally:
        runtime.shutdown()
    statuses = {j.doc_key: j.status for j in env.jobs()}
    assert statuses == {
        "running": JobStatus.CANCELLED, "waiting": JobStatus.CANCELLED, "after": JobStatus.COMPLETED,
    }  # fmt: skip
    runs = env.runs()
    assert "waiting|metadata" not in runs
    assert runs["running|metadata"] == 1
    assert "running|chunk" not in runs  # stopped at the next stage boundary
