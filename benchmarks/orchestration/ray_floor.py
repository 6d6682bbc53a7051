"""The floor of Ray itself: the same four no-op stages as plain Ray actors, called directly.

Unbatched: per job ``s4.run(s3.run(s2.run(s1.run(doc))))`` with the refs passed along, every
job submitted before any is awaited. Batched: the same with ``batch`` jobs per call (one
pipelined round trip of ``HSET``s per call, like ingest_ray's stage). No ledger, no Kafka, no
retries, no leases: what Ray costs before any orchestration.
"""

from __future__ import annotations

import time
from typing import Any

import ray
import redis

from benchmarks.common import (
    STAGES,
    BenchConfig,
    SystemResult,
    delete_prefix,
    stage_times,
    summarize,
    timeline,
    write_many,
    write_one,
)
from benchmarks.cpu import CpuMeter


class FloorStage:
    """One stage as a plain (synchronous) Ray actor."""

    def __init__(self, redis_url: str, ns: str, stage: str) -> None:
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self._ns, self._stage = ns, stage

    def run(self, doc: str) -> str:
        """One job."""
        write_one(self._redis, self._ns, self._stage, doc)
        return doc

    def run_batch(self, docs: list[str]) -> list[str]:
        """Many jobs, one pipelined round trip."""
        write_many(self._redis, self._ns, self._stage, docs)
        return docs

    def ready(self) -> bool:
        """Constructed."""
        return True


RemoteFloorStage: Any = ray.remote(num_cpus=0)(FloorStage)


def run_ray_floor(cfg: BenchConfig, *, batch: int = 0) -> SystemResult:
    """Chain the four actors per job (``batch`` = 0) or per ``batch`` jobs."""
    system = "ray_floor_batched" if batch else "ray_floor"
    ns = cfg.namespace(system)
    actors = [RemoteFloorStage.remote(cfg.redis_url, ns, s) for s in STAGES]
    client = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    try:
        ray.get([a.ready.remote() for a in actors])
        _chain(actors, cfg.docs(system, cfg.warmup, tag="warm"), batch)
        docs = cfg.docs(system)
        meter = CpuMeter(cfg.servers)
        meter.start()
        submitted = _chain(actors, docs, batch)
        cpu = meter.stop()
        points = stage_times(client, ns, docs)
        notes: dict[str, Any] = {"completion": "s4 write time", "calls_per_stage": (
            -(-cfg.jobs // batch) if batch else cfg.jobs)}  # fmt: skip
        if batch:
            notes["batch"] = batch
        notes["timeline"] = timeline(submitted, points)
        notes["cpu_s"] = cpu
        return summarize(system, submitted, points[STAGES[-1]], **notes)
    finally:
        for actor in actors:
            ray.kill(actor)
        delete_prefix(client, ns)
        client.close()


def _chain(actors: list[Any], docs: list[str], batch: int) -> dict[str, float]:
    """Submit every job's chain, then wait for all; answers submit times."""
    submitted: dict[str, float] = {}
    ends = []
    if batch:
        for start in range(0, len(docs), batch):
            chunk = docs[start : start + batch]
            ref: Any = chunk
            now = time.time()
            for actor in actors:
                ref = actor.run_batch.remote(ref)
            submitted.update(dict.fromkeys(chunk, now))
            ends.append(ref)
    else:
        for doc in docs:
            now = time.time()
            ref = doc
            for actor in actors:
                ref = actor.run.remote(ref)
            submitted[doc] = now
            ends.append(ref)
    ray.get(ends)
    return submitted
