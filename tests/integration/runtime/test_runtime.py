"""The runtime end to end on real Kafka, Redis and a local Ray."""

from __future__ import annotations

import dataclasses
import uuid

import ray

from ingest_ray.events import DeadLetter, IngestResult, decode
from ingest_ray.kafka import Consumer
from ingest_ray.pipelines.builtin import AUTO, TWO_PHASE
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.states import JobStatus
from tests.integration.runtime.conftest import Env, request


def _read(env: Env, topic: str, want: int) -> list:  # type: ignore[type-arg]
    got: list = []  # type: ignore[type-arg]
    with Consumer(env.settings.kafka_bootstrap_servers, f"r-{uuid.uuid4().hex}", [topic]) as c:
        for _ in range(60):
            got += c.poll_batch(500, timeout=0.5)
            if len(got) >= want:
                break
    return got


def _completed(env: Env, n: int) -> bool:
    return env.ledger.counts()[JobStatus.COMPLETED] >= n


def test_jobs_run_through_both_pipelines_with_stage_history(env: Env) -> None:
    runtime = env.runtime()
    runtime.start()
    runtime.start_ingress(1, tag="t")
    try:
        env.send(*[request(f"auto-{i}") for i in range(10)])
        env.send(*[request(f"two-{i}", pipeline="two_phase") for i in range(10)])
        env.wait_for(lambda: _completed(env, 20))
    finally:
        runtime.shutdown()
    for job in env.jobs():
        full = env.ledger.get(job.job_id)
        stages = [e.data["completed"] for e in full.history if "completed" in e.data]
        assert stages == list(AUTO if job.pipeline == "auto" else TWO_PHASE)
        assert full.status is JobStatus.COMPLETED
        assert set(full.outputs) == set(stages)
    results = [decode(m.value()) for m in _read(env, env.settings.topic_results, 20)]
    assert sorted(r.doc_key for r in results if isinstance(r, IngestResult)) == sorted(
        [f"auto-{i}" for i in range(10)] + [f"two-{i}" for i in range(10)]
    )
    assert len(_read(env, env.settings.topic_mapping, 20)) == 20


def test_transient_failures_retry_with_growing_delays(env: Env) -> None:
    runtime = env.runtime()
    runtime.start()
    runtime.start_ingress(1, tag="t")
    try:
        env.send(request("flaky", fail_times={"chunk": 2}))
        env.wait_for(lambda: _completed(env, 1))
    finally:
        runtime.shutdown()
    (job,) = env.jobs()
    history = env.ledger.get(job.job_id).history
    retries = [e for e in history if "retry_in_s" in e.data]
    assert [e.data["failed_attempt"] for e in retries] == [1, 2]
    assert all(e.error is not None and e.error.stage == "chunk" for e in retries)
    assert env.runs()["flaky|chunk"] == 3
    # the third try ran after the two backoffs: its start is later than the first failure by
    # at least the scheduled delays
    chunk_done = next(e for e in history if e.data.get("completed") == "chunk")
    assert (chunk_done.at - retries[0].at).total_seconds() >= retries[1].data["retry_in_s"]


def test_permanent_failure_is_dead_lettered_once(env: Env) -> None:
    runtime = env.runtime()
    runtime.start()
    runtime.start_ingress(1, tag="t")
    try:
        env.send(request("doomed", permanent=["embed"]))
        env.wait_for(lambda: env.ledger.counts()[JobStatus.FAILED] == 1)
    finally:
        runtime.shutdown()
    (job,) = env.jobs()
    assert job.error is not None
    assert (job.error.stage, job.error.type) == ("embed", "PermanentError")
    letters = [decode(m.value()) for m in _read(env, env.settings.topic_deadletter, 1)]
    assert len(letters) == 1
    letter = letters[0]
    assert isinstance(letter, DeadLetter)
    assert (letter.job_id, letter.stage, letter.attempts) == (job.job_id, "embed", 1)
    assert env.runs()["doomed|embed"] == 1


def test_duplicate_request_does_not_run_twice(env: Env) -> None:
    runtime = env.runtime()
    runtime.start()
    runtime.start_ingress(1, tag="t")
    try:
        env.send(request("dup"), request("dup"))
        env.wait_for(lambda: _completed(env, 1))
        env.send(request("dup"))
        env.wait_for(lambda: runtime_ingress_messages(runtime) >= 3)
    finally:
        runtime.shutdown()
    assert len(env.jobs()) == 1
    assert all(n == 1 for n in env.runs().values())


def runtime_ingress_messages(runtime: object) -> int:
    return sum(s.messages for s in ray.get([a.stats.remote() for a in runtime.ingress]))  # type: ignore[attr-defined]


def test_embed_pool_grows_under_a_backlog_and_shrinks_when_idle(env: Env) -> None:
    options = dataclasses.replace(env.options, pool_idle_s=2.0)
    runtime = Runtime(env.settings, env.catalog(), options)
    runtime.start()
    runtime.start_ingress(1, tag="t")
    sizes: list[int] = []

    def embed_size() -> int:
        size = ray.get(runtime.dispatcher.stats.remote()).pools["embed"].size
        sizes.append(size)
        return int(size)

    try:
        env.send(*[request(f"grow-{i}", sleep_s={"embed": 0.4}) for i in range(40)])
        env.wait_for(lambda: embed_size() >= 2, timeout=120)
        env.wait_for(lambda: _completed(env, 40), timeout=240)
        env.wait_for(lambda: embed_size() == 1, timeout=60)  # idle for the grace: released
    finally:
        runtime.shutdown()
    assert max(sizes) == 2  # as many as the machine has cores, no more
