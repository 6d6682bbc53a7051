"""ingest_ray end to end: Kafka in, ledger, Dispatcher, stage pools, Kafka out.

Every run gets its own topics, Redis prefix, consumer group and actor names, and removes them
afterwards. A warm-up (tenant ``warm``) joins the consumer group and builds the stage actors;
the measured jobs (tenant ``bench``) are then produced with their submit time in the request
metadata. A job's end is the ledger's ``finished_at`` (the ``completed`` transition, written
after ``s4`` returned), throughput is ``N / (last finished_at - first submit)``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ray
import redis

from benchmarks.common import (
    BenchConfig,
    SystemResult,
    delete_prefix,
    paced,
    stage_times,
    summarize,
    timeline,
    wait_until,
)
from benchmarks.cpu import CpuMeter
from benchmarks.orchestration.stages import PIPELINE, PoolTuning, bench_catalog
from benchmarks.profile import PySpy
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka.admin import delete_topics
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.kafka.producer import Producer
from ingest_ray.kafka.reader import read_topic
from ingest_ray.ledger.base import JobFilter, Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.ledger.migrate import drop_schema
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.states import JobStatus

TENANT, WARM = "bench", "warm"


@dataclass(frozen=True, slots=True)
class IngestTuning:
    """Pool and runtime knobs of the ingest_ray run."""

    pools: PoolTuning = field(default_factory=PoolTuning)
    ingress_batch: int = 500
    partitions: int = 3
    profile_dir: Path | None = None


def _settings(cfg: BenchConfig, tag: str, partitions: int) -> Settings:
    return Settings(
        kafka_bootstrap_servers=cfg.kafka_bootstrap, redis_url=cfg.redis_url,
        redis_prefix=cfg.namespace("ingest_ray"), consumer_group=f"bench-{tag}",
        topic_partitions=partitions, topic_requests=f"bench.{tag}.requests",
        topic_results=f"bench.{tag}.results", topic_mapping=f"bench.{tag}.mapping",
        topic_deadletter=f"bench.{tag}.dlq", runtime_name=f"bench-{tag}",
        postgres_ledger_schema=f"bench_{tag}",  # with INGEST_RAY_LEDGER_BACKEND=postgres
    )  # fmt: skip


def _request(doc: str, tenant: str) -> IngestRequest:
    return IngestRequest(
        tenant_id=tenant, doc_key=doc, source=DocumentSource(kind=SourceKind.TEXT, value=doc),
        pipeline=PIPELINE, metadata={"t0": time.time()},
    )  # fmt: skip


def _submit(
    producer: Producer, topic: str, docs: list[str], tenant: str, rate: float = 0.0
) -> dict[str, float]:
    """Produce one request per doc (at ``rate`` per second when given) and flush; answers each
    doc's submit time (also in its metadata). The producer is the run's one long-lived client,
    connected by the warm-up (as the peers' clients are), so no job waits for a connection."""
    submitted: dict[str, float] = {}
    for doc in paced(docs, rate):
        request = _request(doc, tenant)
        submitted[doc] = float(request.metadata["t0"])
        producer.send(topic, request, key=doc)
    producer.flush()
    return submitted


def _completed(ledger: Ledger, tenant: str, expected: int) -> bool:
    counts = ledger.counts(tenant_id=tenant)
    if counts[JobStatus.FAILED]:
        raise RuntimeError(f"ingest_ray: {counts[JobStatus.FAILED]} job(s) failed")
    return counts[JobStatus.COMPLETED] >= expected


def _ledger_times(ledger: Ledger) -> dict[str, dict[str, float]]:
    """From the ledger records: per point (``submitted`` from the request metadata,
    ``admitted`` = created_at, ``started`` = first queued -> processing, ``completed`` =
    finished_at), the time of each measured job."""
    out: dict[str, dict[str, float]] = {p: {} for p in ("submitted", "admitted", "started")}
    out["completed"] = {}
    cursor: str | None = None
    flt = JobFilter(tenant_id=TENANT, status=JobStatus.COMPLETED)
    while True:
        page = ledger.list_jobs(flt, cursor=cursor, limit=1000)
        for job in page.items:
            assert job.finished_at is not None
            assert job.started_at is not None
            out["submitted"][job.doc_key] = float(job.metadata["request"]["t0"])
            out["admitted"][job.doc_key] = job.created_at.timestamp()
            out["started"][job.doc_key] = job.started_at.timestamp()
            out["completed"][job.doc_key] = job.finished_at.timestamp()
        cursor = page.next_cursor
        if cursor is None:
            return out


def _results_on_topic(settings: Settings) -> int:
    """Distinct measured jobs with a ``completed`` result message."""
    jobs = set()
    for msg in read_topic(settings.kafka_bootstrap_servers, settings.topic_results):
        value = json.loads(msg.value())
        if value.get("tenant_id") == TENANT and value.get("status") == "completed":
            jobs.add(value["job_id"])
    return len(jobs)


def _actor_pids(runtime: Runtime) -> dict[str, int]:
    """Process ids of the Dispatcher, relay and ingress actors (for py-spy)."""
    opts = runtime.options
    handles = {
        "dispatcher": runtime.dispatcher,
        "relay": ray.get_actor(opts.relay_name, namespace=opts.namespace),
    }
    handles.update({f"ingress_{i}": a for i, a in enumerate(runtime.ingress)})
    refs = {n: h.__ray_call__.remote(lambda _self: os.getpid()) for n, h in handles.items()}
    return {n: int(ray.get(r, timeout=30)) for n, r in refs.items()}


def run_ingest_ray(cfg: BenchConfig, tuning: IngestTuning | None = None) -> SystemResult:
    """Run the measured jobs through a fresh runtime and summarise them."""
    t = tuning or IngestTuning()
    tag = uuid.uuid4().hex[:8]
    settings = _settings(cfg, tag, t.partitions)
    KafkaClient.from_settings(settings).ensure_topics()
    options = RuntimeOptions(
        namespace="ingest-ray-bench", name=f"bench-{tag}", ingress_batch=t.ingress_batch
    )
    runtime = Runtime(settings, bench_catalog(t.pools), options)
    ledger = open_ledger(settings)
    client = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    producer = KafkaClient.from_settings(settings).producer(**{"linger.ms": 0})
    try:
        runtime.start()
        runtime.start_ingress(1, tag="bench")
        warm = cfg.docs("ingest_ray", cfg.warmup, tag="warm")
        _submit(producer, settings.topic_requests, warm, WARM)
        wait_until(lambda: _completed(ledger, WARM, cfg.warmup), timeout_s=180, what="warm-up")
        return _measure(cfg, t, settings=settings, runtime=runtime, ledger=ledger,
                        client=client, producer=producer)  # fmt: skip
    finally:
        producer.close()
        runtime.shutdown()
        _delete_topics(settings)
        delete_prefix(client, settings.redis_prefix)
        ledger.close()
        client.close()
        if settings.ledger_backend == "postgres":
            drop_schema(settings.postgres_dsn, settings.postgres_ledger_schema)


def _measure(
    cfg: BenchConfig, t: IngestTuning, *, settings: Settings, runtime: Runtime,
    ledger: Ledger, client: redis.Redis, producer: Producer,
) -> SystemResult:  # fmt: skip
    docs = cfg.docs("ingest_ray")
    spy = PySpy(_actor_pids(runtime), t.profile_dir) if t.profile_dir else None
    if spy is not None:
        spy.start()
    meter = CpuMeter(cfg.servers)
    meter.start()
    submitted = _submit(producer, settings.topic_requests, docs, TENANT, cfg.rate)
    wait_until(lambda: _completed(ledger, TENANT, cfg.jobs), timeout_s=cfg.timeout_s,
               what="ingest_ray", poll_s=0.1)  # fmt: skip
    cpu = meter.stop()
    profiles = [p.as_dict() for p in spy.stop()] if spy is not None else []
    points = _ledger_times(ledger)
    finished = points.pop("completed")
    points.pop("submitted")
    points.update(stage_times(client, settings.redis_prefix, docs))
    points["completed"] = finished
    return summarize(
        "ingest_ray", submitted, finished,
        completion="ledger finished_at (completed transition)",
        result_messages=_results_on_topic(settings),
        timeline=timeline(submitted, points), cpu_s=cpu,
        pools=asdict(t.pools), ingress_batch=t.ingress_batch, partitions=t.partitions,
        profiles=profiles,
    )  # fmt: skip


def _delete_topics(settings: Settings) -> None:
    delete_topics(settings.kafka_bootstrap_servers, list(settings.topics))
