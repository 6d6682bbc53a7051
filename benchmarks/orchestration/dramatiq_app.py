"""The Dramatiq peer: four no-op actors piped per job on a Redis broker.

Loaded by the worker subprocess (``dramatiq benchmarks.orchestration.dramatiq_app --processes 2
--threads 1``) and by the driver, configured from the environment like the Celery peer:
``INGEST_RAY_BENCH_BROKER``, ``INGEST_RAY_BENCH_REDIS``, ``INGEST_RAY_BENCH_NS``,
``INGEST_RAY_BENCH_QUEUE``. Dramatiq acknowledges a message after its actor ran. The default
middleware is kept (age and time limits, retries, pipelines); none of it listens on a port.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import redis

from benchmarks.common import process_redis, write_one

# optional dependency (the ``bench`` extra), typed the same whether installed or not
dramatiq: Any = importlib.import_module("dramatiq")
redis_broker: Any = importlib.import_module("dramatiq.brokers.redis")

BROKER = os.environ.get("INGEST_RAY_BENCH_BROKER", "redis://127.0.0.1:6379/3")
STAGE_REDIS = os.environ.get("INGEST_RAY_BENCH_REDIS", "redis://127.0.0.1:6379/0")
NS = os.environ.get("INGEST_RAY_BENCH_NS", "bench:dramatiq:")
QUEUE = os.environ.get("INGEST_RAY_BENCH_QUEUE", "ingest-ray-bench")

broker = redis_broker.RedisBroker(url=BROKER)
dramatiq.set_broker(broker)


def _redis() -> redis.Redis:
    return process_redis(STAGE_REDIS)


def bench_s1(doc: str, t0: float) -> str:
    """First stage; ``t0`` (submit time) travels only for the record."""
    del t0
    write_one(_redis(), NS, "s1", doc)
    return doc


def bench_s2(doc: str) -> str:
    """Second stage."""
    write_one(_redis(), NS, "s2", doc)
    return doc


def bench_s3(doc: str) -> str:
    """Third stage."""
    write_one(_redis(), NS, "s3", doc)
    return doc


def bench_s4(doc: str) -> str:
    """Last stage: its write's time is the job's end."""
    write_one(_redis(), NS, "s4", doc)
    return doc


STAGE_ACTORS: list[Any] = [
    dramatiq.actor(fn, actor_name=fn.__name__, queue_name=QUEUE)
    for fn in (bench_s1, bench_s2, bench_s3, bench_s4)
]


def submit(doc: str, t0: float) -> Any:
    """One job: ``pipeline([s1, s2, s3, s4])``."""
    first, *rest = STAGE_ACTORS
    messages = [first.message(doc, t0), *(actor.message() for actor in rest)]
    return dramatiq.pipeline(messages).run()
