"""The Celery peer: four no-op tasks chained per job, Redis broker and result backend.

Loaded by the worker subprocess (``celery -A benchmarks.orchestration.celery_app worker
--concurrency 2 --pool prefork``) and by the benchmark driver, both configured from the environment:
``INGEST_RAY_BENCH_BROKER`` (broker and result backend), ``INGEST_RAY_BENCH_REDIS`` (where the
stages write), ``INGEST_RAY_BENCH_NS`` (key prefix of the writes), ``INGEST_RAY_BENCH_QUEUE``.
``task_acks_late`` is on: a task is acknowledged after it ran, as ingest_ray's ledger records a
stage only after it returned.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import redis

from benchmarks.common import process_redis, write_one

# optional dependency (the ``bench`` extra), typed the same whether installed or not
celery: Any = importlib.import_module("celery")

BROKER = os.environ.get("INGEST_RAY_BENCH_BROKER", "redis://127.0.0.1:6379/2")
STAGE_REDIS = os.environ.get("INGEST_RAY_BENCH_REDIS", "redis://127.0.0.1:6379/0")
NS = os.environ.get("INGEST_RAY_BENCH_NS", "bench:celery:")
QUEUE = os.environ.get("INGEST_RAY_BENCH_QUEUE", "ingest-ray-bench")
#: tasks a worker process reserves ahead (times concurrency); acks_late keeps them unacked
PREFETCH = int(os.environ.get("INGEST_RAY_BENCH_PREFETCH", "4"))

app = celery.Celery("ingest_ray_bench", broker=BROKER, backend=BROKER)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=PREFETCH,
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def _redis() -> redis.Redis:
    return process_redis(STAGE_REDIS)


def _first(doc: str, t0: float) -> str:
    """First stage; ``t0`` (submit time) travels only for the record."""
    del t0
    write_one(_redis(), NS, "s1", doc)
    return doc


def _stage(name: str) -> Any:
    def run(doc: str) -> str:
        write_one(_redis(), NS, name, doc)
        return doc

    run.__name__ = run.__qualname__ = name
    return run


s1: Any = app.task(name="bench.s1")(_first)
s2: Any = app.task(name="bench.s2")(_stage("s2"))
s3: Any = app.task(name="bench.s3")(_stage("s3"))
#: the last stage: its write's time is the job's end
s4: Any = app.task(name="bench.s4")(_stage("s4"))


def submit(doc: str, t0: float) -> Any:
    """One job: ``chain(s1, s2, s3, s4)``."""
    return celery.chain(s1.s(doc, t0), s2.s(), s3.s(), s4.s()).apply_async()
