"""The runs of the fairness benchmark: ingest_ray (one runtime, one tenant pair per run) and
Celery with one queue. Each answers per-job submit, start and end times."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import redis

from ingest_ray.admission import new_job
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka.admin import delete_topics
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.base import JobFilter, Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.runtime.work import WorkItem
from ingest_ray.states import JobStatus
from ingest_ray.tenants import TenantLimits

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "fair1"
#: doc -> (submitted, started, finished), epoch seconds
Times = dict[str, tuple[float, float, float]]


@dataclass(frozen=True)
class FairnessConfig:
    """One invocation: A floods, B arrives later, a pool slow enough to keep a backlog."""

    a_jobs: int = 5000
    b_jobs: int = 100
    b_delay_s: float = 10.0
    work_s: float = 0.2
    slots: int = 8
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap: str = "127.0.0.1:9092"
    celery_db: int = 4
    timeout_s: float = 900.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def broker_url(self) -> str:
        """The Celery broker: another database of the same Redis."""
        return f"{self.redis_url.rsplit('/', 1)[0]}/{self.celery_db}"


def wait_until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``done`` every 0.2 s; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout_s:.0f}s")
        time.sleep(0.2)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Remove every key under ``prefix``."""
    batch = list(client.scan_iter(match=f"{prefix}*", count=5000))
    for start in range(0, len(batch), 5000):
        client.unlink(*batch[start : start + 5000])


# --- ingest_ray -----------------------------------------------------------------------------


def fairness_catalog(cfg: FairnessConfig) -> Catalog:
    """One stage (``ScriptedStage`` sleeping ``work_s``) on one actor with ``slots`` slots."""
    cat = Catalog()
    pool = PoolSpec("work", Resources(num_cpus=0.25), min_size=1, max_size=1,
                    max_in_flight=cfg.slots, actor_concurrency=cfg.slots)  # fmt: skip
    cat.register_stage("work", "ingest_ray.testing:ScriptedStage", pool)
    cat.register_pipeline(Pipeline(PIPELINE, (StageSpec("work", timeout_s=60),)))
    return cat


class IngestBench:
    """One runtime for every ingest_ray run; tenants keep the runs apart."""

    def __init__(self, cfg: FairnessConfig, limits: dict[str, TenantLimits]) -> None:
        tag = f"fair{cfg.run_id}"
        self.cfg = cfg
        self.settings = Settings(
            kafka_bootstrap_servers=cfg.kafka_bootstrap, redis_url=cfg.redis_url,
            redis_prefix=f"bench:{tag}:", consumer_group=f"bench-{tag}", topic_partitions=3,
            topic_requests=f"bench.{tag}.requests", topic_results=f"bench.{tag}.results",
            topic_mapping=f"bench.{tag}.mapping", topic_deadletter=f"bench.{tag}.dlq",
            runtime_name=f"bench-{tag}", tenant_limits=limits,
        )  # fmt: skip
        KafkaClient.from_settings(self.settings).ensure_topics()
        self.options = RuntimeOptions(namespace="ingest-ray-bench", name=f"bench-{tag}")
        self.runtime = Runtime(self.settings, fairness_catalog(cfg), self.options)
        self.ledger: Ledger = open_ledger(self.settings)

    def request(self, doc: str, tenant: str, priority: int = 5) -> IngestRequest:
        return IngestRequest(
            tenant_id=tenant, doc_key=doc, pipeline=PIPELINE, priority=priority,
            source=DocumentSource(kind=SourceKind.TEXT, value=doc),
            metadata={"t0": time.time(), "sleep_s": {"work": self.cfg.work_s}},
        )  # fmt: skip

    def submit(self, tenant: str, count: int, priority: int = 5) -> None:
        with KafkaClient.from_settings(self.settings).producer() as producer:
            for i in range(count):
                doc = f"{tenant}-{i}"
                producer.send(self.settings.topic_requests, self.request(doc, tenant, priority),
                              key=doc)  # fmt: skip

    def count(self, tenant: str, status: JobStatus) -> int:
        return self.ledger.counts(tenant_id=tenant)[status]

    def wait_done(self, tenant: str, expected: int) -> None:
        wait_until(lambda: self.count(tenant, JobStatus.COMPLETED) >= expected,
                   self.cfg.timeout_s, f"ingest_ray tenant {tenant}")  # fmt: skip

    def times(self, tenant: str) -> Times:
        out: Times = {}
        cursor: str | None = None
        while True:
            page = self.ledger.list_jobs(JobFilter(tenant_id=tenant), cursor=cursor, limit=1000)
            for job in page.items:
                if job.started_at is None:
                    continue
                end = job.finished_at.timestamp() if job.finished_at else float("nan")
                submitted = float(job.metadata["request"]["t0"])
                out[job.doc_key] = (submitted, job.started_at.timestamp(), end)
            cursor = page.next_cursor
            if cursor is None:
                return out

    def submit_held(self, tenant: str, doc: str, priority: int) -> float:
        """Create one job and hand it straight to the Dispatcher; answers when it holds it."""
        request = self.request(doc, tenant, priority)
        outcome = self.ledger.create(new_job(request, PIPELINE))
        item = WorkItem(
            job_id=outcome.job_id, tenant_id=tenant, doc_key=doc, pipeline=PIPELINE,
            priority=priority, source=request.source, metadata=dict(request.metadata),
        )  # fmt: skip
        ray.get(self.runtime.dispatcher.submit.remote([item], []), timeout=60)
        return time.time()

    def close(self) -> None:
        try:
            self.runtime.shutdown()
        finally:
            delete_topics(self.settings.kafka_bootstrap_servers, list(self.settings.topics))
            client = redis.Redis.from_url(self.cfg.redis_url)
            delete_prefix(client, self.settings.redis_prefix)
            client.close()
            self.ledger.close()


# --- Celery -----------------------------------------------------------------------------------


@contextmanager
def celery_worker(cfg: FairnessConfig, ns: str) -> Iterator[Any]:
    """A Celery worker (threads, ``slots`` of them) and the driver's module, configured."""
    env = {"FAIRNESS_BROKER": cfg.broker_url(), "FAIRNESS_REDIS": cfg.redis_url,
           "FAIRNESS_NS": ns, "FAIRNESS_QUEUE": f"fairness-{cfg.run_id}"}  # fmt: skip
    os.environ.update(env)
    broker = redis.Redis.from_url(cfg.broker_url())
    broker.flushdb()
    log = Path(tempfile.mkstemp(prefix="fairness-celery-", suffix=".log")[1])
    command = [sys.executable, "-m", "celery", "-A", "benchmarks.fairness_celery", "worker",
               "--pool", "threads", "--concurrency", str(cfg.slots), "--loglevel", "WARNING",
               "-Q", env["FAIRNESS_QUEUE"]]  # fmt: skip
    with log.open("wb") as out:
        worker = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  start_new_session=True)  # fmt: skip
    try:
        sys.path.insert(0, str(ROOT))
        import importlib  # noqa: PLC0415

        module = importlib.reload(importlib.import_module("benchmarks.fairness_celery"))
        yield module
    finally:
        if worker.poll() is None:
            os.killpg(os.getpgid(worker.pid), signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgid(worker.pid), signal.SIGKILL)
        broker.flushdb()
        broker.close()
        log.unlink(missing_ok=True)


def celery_run(cfg: FairnessConfig, log: Callable[[str], None]) -> tuple[Times, Times]:
    """A's flood, B after ``b_delay_s``, one queue: answers (A's times, B's times)."""
    ns = f"bench:fairness:{cfg.run_id}:celery:"
    client = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    submitted: dict[str, float] = {}
    try:
        with celery_worker(cfg, ns) as module:
            module.work.apply_async(("warm", cfg.work_s))
            wait_until(lambda: client.hexists(f"{ns}end", "warm"), 120, "celery warm-up")
            log(f"celery: {cfg.a_jobs} A jobs, then {cfg.b_jobs} B jobs")
            first = time.time()
            for i in range(cfg.a_jobs):
                submitted[f"A-{i}"] = time.time()
                module.work.apply_async((f"A-{i}", cfg.work_s))
            time.sleep(max(0.0, first + cfg.b_delay_s - time.time()))
            for i in range(cfg.b_jobs):
                submitted[f"B-{i}"] = time.time()
                module.work.apply_async((f"B-{i}", cfg.work_s))
            total = cfg.a_jobs + cfg.b_jobs + 1
            wait_until(lambda: client.hlen(f"{ns}end") >= total, cfg.timeout_s, "celery")
        starts = {k: float(v) for k, v in client.hgetall(f"{ns}start").items()}
        ends = {k: float(v) for k, v in client.hgetall(f"{ns}end").items()}
    finally:
        delete_prefix(client, ns)
        client.close()
    times = {d: (t0, starts[d], ends[d]) for d, t0 in submitted.items()}
    return ({d: t for d, t in times.items() if d.startswith("A-")},
            {d: t for d, t in times.items() if d.startswith("B-")})  # fmt: skip
