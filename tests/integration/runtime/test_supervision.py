"""The control plane restarts by itself: the Dispatcher, the outbox relay and an ingress actor
killed mid-run (``ray.kill``, for good) come back without a person, and every
job completes exactly once. Several workers share one runtime; stopping one leaves the other's
work running; the last one out stops the control plane."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import ray

from ingest_ray.events import IngestResult, decode
from ingest_ray.kafka.reader import read_topic
from ingest_ray.runtime.actors import find
from ingest_ray.states import JobStatus
from ingest_ray.workers.ingest import IngestWorker
from tests.integration.runtime.conftest import Env, request


@pytest.fixture
def worker(env: Env) -> Iterator[IngestWorker]:
    w = IngestWorker(env.settings.model_copy(update={"metrics_port": -1}), env.catalog(),
                     options=env.options, name=f"sup-{uuid.uuid4().hex[:6]}")  # fmt: skip
    w.start()
    yield w
    w.stop(grace_s=5)


def _results(env: Env) -> dict[str, int]:
    """Result events per job, after dropping repeated event ids (the outbox's at-least-once)."""
    seen: dict[str, str] = {}
    for msg in read_topic(env.settings.kafka_bootstrap_servers, env.settings.topic_results):
        event = decode(msg.value())
        if isinstance(event, IngestResult):
            seen[event.event_id] = event.job_id
    counts: dict[str, int] = {}
    for job_id in seen.values():
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts


def _assert_exactly_once(env: Env, docs: list[str]) -> None:
    jobs = env.jobs()
    assert sorted(j.doc_key for j in jobs) == sorted(docs)  # no request lost or doubled
    assert all(j.status is JobStatus.COMPLETED for j in jobs)
    effects = env.effects()
    assert len(effects) == len(docs) * 4  # each (document, stage) effect once
    env.wait_for(lambda: len(_results(env)) == len(docs), timeout=60)
    assert set(_results(env).values()) == {1}  # one result per job


@pytest.mark.parametrize("victim", ["dispatcher", "outbox-relay"])
def test_killed_control_plane_actor_comes_back_and_nothing_is_lost(
    env: Env, worker: IngestWorker, victim: str
) -> None:
    docs = [f"{victim}-{i}" for i in range(30)]
    env.send(*[request(d, sleep_s={"chunk": 0.05 * (i % 10)}) for i, d in enumerate(docs)])
    env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] >= 3, timeout=180)
    name = f"{env.options.name}/{victim}"
    ray.kill(find(name, env.options.namespace), no_restart=True)  # for good: no Ray restart
    env.wait_for(lambda: find(name, env.options.namespace) is not None, timeout=60)
    env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == len(docs), timeout=240)
    _assert_exactly_once(env, docs)


def test_killed_ingress_actor_is_recreated_and_its_batch_is_not_lost(
    env: Env, worker: IngestWorker
) -> None:
    docs = [f"ing-{i}" for i in range(30)]
    env.send(*[request(d) for d in docs[:15]])
    env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] >= 1, timeout=180)
    ray.kill(worker.runtime.ingress[0], no_restart=True)
    env.send(*[request(d) for d in docs[15:]])
    env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == len(docs), timeout=240)
    _assert_exactly_once(env, docs)


def test_two_workers_share_a_runtime_and_stopping_one_leaves_the_other_running(
    env: Env,
) -> None:
    settings = env.settings.model_copy(update={"metrics_port": -1})
    first = IngestWorker(settings, env.catalog(), options=env.options, name="w-one")
    second = IngestWorker(settings, env.catalog(), options=env.options, name="w-two")
    first.start()
    second.start()
    try:
        docs = [f"two-{i}" for i in range(20)]
        env.send(*[request(d, sleep_s={"chunk": 0.2}) for d in docs[:10]])
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] >= 1, timeout=180)
        first.stop(grace_s=5)  # drains only its own ingress
        assert find(env.options.dispatcher_name, env.options.namespace) is not None
        env.send(*[request(d) for d in docs[10:]])  # the group rebalanced to the second
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == len(docs), timeout=240)
    finally:
        second.stop(grace_s=5)  # the last one out
    assert find(env.options.dispatcher_name, env.options.namespace) is None
    assert find(env.options.relay_name, env.options.namespace) is None
    _assert_exactly_once(env, docs)
