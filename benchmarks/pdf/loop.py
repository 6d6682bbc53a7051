"""(b) The floor a user could write in an afternoon: the same built-in stage objects in one
process, stage by stage over all documents, ``run_batch`` in the pool's batch size where the
pool batches, no Ray, no Kafka, no ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from benchmarks.pdf.jobs import STAGES, Job
from benchmarks.pdf.timing import timed
from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.pipelines.catalog import PoolSpec
from ingest_ray.stages.base import Stage


async def run_loop(jobs: Sequence[Job], settings: Settings, pools: dict[str, PoolSpec]) -> None:
    """Run every job through every stage (the stages are built here, inside the timing)."""
    stages = {name: timed(settings, name) for name in STAGES}
    try:
        for name in STAGES:
            live = [j for j in jobs if j.status == "running"]
            await _stage(stages[name], name, live, pools[name].batch_size)
    finally:
        for stage in stages.values():
            await stage.aclose()


async def _stage(stage: Stage, name: str, jobs: Sequence[Job], batch: int) -> None:
    if batch > 1:
        for start in range(0, len(jobs), batch):
            chunk = jobs[start : start + batch]
            results = await stage.run_batch([j.input(name) for j in chunk])
            for job, result in zip(chunk, results, strict=True):
                job.apply(name, result)
        return
    for job in jobs:
        try:
            job.apply(name, await stage.run(job.input(name)))
        except IngestError as exc:
            job.apply(name, exc)


def run_plain_loop(jobs: Sequence[Job], settings: Settings, pools: dict[str, PoolSpec]) -> None:
    """:func:`run_loop` on a fresh event loop."""
    asyncio.run(run_loop(jobs, settings, pools))
