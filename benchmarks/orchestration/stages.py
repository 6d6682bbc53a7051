"""The benchmark's no-op stage for ingest_ray and the catalog with the 4-stage ``bench4``
pipeline (stages ``s1..s4``, each in a pool of its own).

The stage takes batches (``batch_size > 1``): the Dispatcher hands a pool up to
``PoolSpec.batch_size`` jobs per call and the stage does each job's ``HSET`` in one pipelined round
trip. Batching is part of ingest_ray's design (pools take batches where the stage allows it), so
the benchmark uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import redis

from benchmarks.common import STAGES, write_many, write_one
from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.retry import RetryPolicy
from ingest_ray.stages.base import StageInput, StageOutput

PIPELINE = "bench4"
FACTORY = "benchmarks.orchestration.stages:NoopStage"


class NoopStage:
    """One ``HSET {prefix}bench:{stage} {doc_key} {time}`` per job, nothing else."""

    name: ClassVar[str] = "noop"
    batch_size: ClassVar[int] = 1024

    def __init__(self, settings: Settings, name: str) -> None:
        self.stage = name
        self._ns = settings.redis_prefix
        self._redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    async def run(self, item: StageInput) -> StageOutput:
        """One job."""
        write_one(self._redis, self._ns, self.stage, item.doc_key)
        return StageOutput()

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Many jobs, one pipelined round trip."""
        write_many(self._redis, self._ns, self.stage, [i.doc_key for i in items])
        return [StageOutput() for _ in items]

    async def aclose(self) -> None:
        """Close the Redis connection."""
        self._redis.close()


@dataclass(frozen=True, slots=True)
class PoolTuning:
    """The knobs of the four bench pools (the same for each)."""

    batch_size: int = 256
    max_in_flight: int = 4
    actor_concurrency: int = 4
    num_cpus: float = 0.25
    actors: int = 1


def bench_catalog(tuning: PoolTuning | None = None) -> Catalog:
    """A catalog holding only ``bench4``: s1 -> s2 -> s3 -> s4, each stage its own pool."""
    t = tuning or PoolTuning()
    catalog = Catalog()
    for stage in STAGES:
        pool = PoolSpec(
            stage, Resources(num_cpus=t.num_cpus), min_size=t.actors, max_size=t.actors,
            max_in_flight=t.max_in_flight, batch_size=t.batch_size,
            actor_concurrency=t.actor_concurrency,
        )  # fmt: skip
        catalog.register_stage(stage, FACTORY, pool)
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0)
    specs = tuple(StageSpec(s, retry=retry, timeout_s=60) for s in STAGES)
    catalog.register_pipeline(Pipeline(PIPELINE, specs, "benchmark: four no-op stages"))
    return catalog
