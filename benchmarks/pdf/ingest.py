"""(a) ingest_ray end to end, through the public path ``ingest-ray ingest DIR`` takes
(:func:`ingest_ray.local_run.run_local`): requests produced to Kafka, admitted to the Redis
ledger, the Dispatcher and stage pools on the local Ray, LanceDB, results on Kafka, mapping by a
MappingWorker. The catalog is the built-in one with every stage wrapped for timing.

The run's window starts before ``run_local`` (the runtime's start-up is part of the run, as for
a user) and ends when the last job is terminal in the ledger; the harness's own shutdown
(draining the mapping worker, stopping actors) is outside it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from benchmarks.common import delete_prefix
from benchmarks.cpu import CpuMeter
from benchmarks.pdf.corpus import Corpus
from benchmarks.pdf.jobs import PIPELINE, TENANT
from benchmarks.pdf.timing import TIMED
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.kafka.admin import delete_topics
from ingest_ray.local_run import Tracked, run_local
from ingest_ray.pipelines.builtin import STAGE_FACTORIES, builtin_catalog
from ingest_ray.pipelines.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass
class IngestRun:
    """What the end-to-end run measured."""

    wall_s: float
    cpu: dict[str, float]
    statuses: dict[str, int]
    pages: int
    jobs_window_s: float
    errors: list[str] = field(default_factory=list)


def timed_catalog(settings: Settings) -> Catalog:
    """The built-in catalog with every stage wrapped for timing."""
    return builtin_catalog(settings, factories=dict.fromkeys(STAGE_FACTORIES, TIMED))


def run_ingest_ray(
    corpus: Corpus, settings: Settings, servers: dict[str, int], *, timeout_s: float,
    catalog: Catalog | None = None,
) -> IngestRun:  # fmt: skip
    """Ingest the corpus end to end; answers its figures."""
    sources = [DocumentSource(kind=SourceKind.PDF_PATH, value=str(p)) for p in corpus.paths]
    meter = CpuMeter(servers, children=True)
    end: dict[str, Any] = {}
    meter.start()
    started = time.time()
    try:
        report = run_local(
            settings, sources, tenant=TENANT, pipeline=PIPELINE, timeout=timeout_s,
            catalog=catalog or timed_catalog(settings), on_progress=_at_end(meter, end),
        )  # fmt: skip
    finally:
        _cleanup(settings)
    if "wall" not in end:
        end.update(wall=time.time(), cpu=meter.stop())
    jobs = [t.job for t in report.tracked if t.job is not None]
    statuses: dict[str, int] = {}
    for job in jobs:
        statuses[job.status.value] = statuses.get(job.status.value, 0) + 1
    created = [j.created_at.timestamp() for j in jobs]
    finished = [j.finished_at.timestamp() for j in jobs if j.finished_at is not None]
    return IngestRun(
        wall_s=end["wall"] - started, cpu=end["cpu"], statuses=statuses,
        pages=sum(int(j.outputs.get("mineru", {}).get("pages", 0)) for j in jobs),
        jobs_window_s=(max(finished) - min(created)) if finished and created else 0.0,
        errors=[f"{j.doc_key}: {j.error.type}: {j.error.message}" for j in jobs if j.error][:5],
    )  # fmt: skip


def _at_end(meter: CpuMeter, end: dict[str, Any]) -> Callable[[list[Tracked]], None]:
    """A progress callback that stops the meter the first time every job is terminal."""

    def check(tracked: list[Tracked]) -> None:
        if "wall" not in end and tracked and all(t.done for t in tracked):
            end.update(wall=time.time(), cpu=meter.stop())

    return check


def _cleanup(settings: Settings) -> None:
    """Remove the run's topics and Redis keys."""
    delete_topics(settings.kafka_bootstrap_servers, list(settings.topics))
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        delete_prefix(client, settings.redis_prefix)
    finally:
        client.close()
