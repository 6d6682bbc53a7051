"""The Celery peer of the fairness benchmark: one queue, one task that works ``work_s``.

Loaded by the worker (``celery -A benchmarks.fairness_celery worker --pool threads``) and by the
driver, both configured from the environment: ``FAIRNESS_BROKER`` (broker, Redis),
``FAIRNESS_REDIS`` (where the task records its start and end), ``FAIRNESS_NS`` (key prefix),
``FAIRNESS_QUEUE``. ``acks_late`` and a prefetch of 1: each worker thread holds one task, so
the queue order is what decides who waits (as the usual advice for fair Celery queues has it).
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

import redis

celery: Any = importlib.import_module("celery")  # the ``bench`` extra

BROKER = os.environ.get("FAIRNESS_BROKER", "redis://127.0.0.1:6379/2")
STAGE_REDIS = os.environ.get("FAIRNESS_REDIS", "redis://127.0.0.1:6379/0")
NS = os.environ.get("FAIRNESS_NS", "bench:fairness:celery:")
QUEUE = os.environ.get("FAIRNESS_QUEUE", "fairness")

app = celery.Celery("fairness_bench", broker=BROKER)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client  # noqa: PLW0603 - one connection per worker process, made after the fork
    if _client is None:
        _client = redis.Redis.from_url(STAGE_REDIS, decode_responses=True)
    return _client


def _work(doc: str, work_s: float) -> str:
    client = _redis()
    client.hset(f"{NS}start", doc, repr(time.time()))
    time.sleep(work_s)
    client.hset(f"{NS}end", doc, repr(time.time()))
    return doc


work: Any = app.task(name="fairness.work")(_work)
