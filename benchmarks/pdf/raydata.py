"""(c) What a Ray user would pick for a batch job: Ray Data, the same built-in stage objects as
``map_batches`` callable classes on actor pools, on the same local Ray. Each stage's pool gets
the resources, size bounds and batch size of its ingest_ray pool (``builtin_pools``); a row is
one job as JSON, and a job that failed (or finished early) passes the later stages untouched.
A pool that asks for a GPU or a custom resource gets a fixed size (``max_size`` actors, Ray
Data's idiom for accelerator stages: its autoscaler adds actors slowly); the others scale
between 1 and ``max_size`` actors."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from benchmarks.pdf.jobs import STAGES, Job
from benchmarks.pdf.timing import timed
from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.pipelines.catalog import PoolSpec
from ingest_ray.stages.base import StageOutput


class StageUDF:
    """One stage as a Ray Data callable class: built once per actor, a batch per call."""

    def __init__(self, name: str, settings: Settings, batch: int) -> None:
        self.name = name
        self.batch = batch
        self.stage = timed(settings, name)
        self.loop = asyncio.new_event_loop()

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs = [Job.from_json(str(text)) for text in rows["job"]]
        live = [j for j in jobs if j.status == "running"]
        if live:
            results = self.loop.run_until_complete(self._run(live))
            for job, result in zip(live, results, strict=True):
                job.apply(self.name, result)
        return {"job": np.array([j.to_json() for j in jobs], dtype=object)}

    async def _run(self, jobs: list[Job]) -> list[StageOutput | BaseException]:
        items = [j.input(self.name) for j in jobs]
        if self.batch > 1:
            return list(await self.stage.run_batch(items))
        out: list[StageOutput | BaseException] = []
        for item in items:
            try:
                out.append(await self.stage.run(item))
            except IngestError as exc:
                out.append(exc)
        return out


def build_dataset(jobs: list[Job], settings: Settings, pools: dict[str, PoolSpec]) -> Any:
    """The lazy dataset: the jobs, then one ``map_batches`` per stage."""
    import ray.data  # noqa: PLC0415 - the bench extra

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    ds: Any = ray.data.from_items(
        [{"job": j.to_json()} for j in jobs], override_num_blocks=len(jobs)
    )
    for name in STAGES:
        pool = pools[name]
        fixed = bool(pool.resources.num_gpus or pool.resources.custom)
        size: dict[str, Any] = (
            {"size": pool.max_size} if fixed else {"min_size": 1, "max_size": pool.max_size}
        )
        ds = ds.map_batches(
            StageUDF, fn_constructor_args=(name, settings, pool.batch_size),
            batch_size=pool.batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(**size),
            num_cpus=pool.resources.num_cpus, num_gpus=pool.resources.num_gpus or None,
            resources=dict(pool.resources.custom) or None,
        )  # fmt: skip
    return ds


def run_ray_data(jobs: list[Job], settings: Settings, pools: dict[str, PoolSpec]) -> list[Job]:
    """Run the dataset to the end; answers the jobs as they came out."""
    rows = build_dataset(jobs, settings, pools).take_all()
    return [Job.from_json(str(row["job"])) for row in rows]
