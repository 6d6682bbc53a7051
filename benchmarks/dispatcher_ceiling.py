"""The ceiling of the one-per-cluster parts: how many jobs/s one Dispatcher (with its
outbox relay and Redis) drives through a no-op pipeline.

    python -m benchmarks.dispatcher_ceiling --jobs 5000 --stages 1,4 \
        --json benchmarks/results/dispatcher_ceiling.json

Kafka ingress is left out on purpose (it shards with the partitions): the jobs are created in
the ledger first (``create_many``, not timed), then handed to the Dispatcher in batches of 500,
as the ingress actors do. The stages are the simulated accelerator with ``page_s = 0`` and no
resource, i.e. no-ops, one pool per stage, batches of 256. Throughput is jobs / (last
``finished_at`` - first hand-over). CPU seconds per process during the run give each part's
cost per job, and so its ceiling if it had a core to itself (1000 / CPU ms per job). Each run
starts its own local Ray (``address="local"``: it never joins another Ray on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray
import redis

from benchmarks.common import delete_prefix, machine_info, wait_until
from benchmarks.cpu import CpuMeter, server_pids
from ingest_ray.admission import Admitted, RawRecord, new_job
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.base import JobFilter
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.pipelines.spec import Pipeline, StageSpec
from ingest_ray.retry import RetryPolicy
from ingest_ray.runtime.ingress import work_item
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.simulate.accelerator import FACTORY, accelerator_pool
from ingest_ray.states import JobStatus

TENANT = "ceiling"
NAMESPACE = "ingest-ray-ceiling"
HANDOVER = 500


@dataclass(frozen=True)
class CeilingConfig:
    """One invocation."""

    jobs: int = 5000
    stages: tuple[int, ...] = (1, 4)
    batch_size: int = 256
    kafka: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"


def _catalog(stages: int, batch: int) -> Catalog:
    catalog = Catalog()
    specs = []
    for i in range(stages):
        pool = accelerator_pool(resource=None, max_size=1, name=f"n{i}", actor_concurrency=4,
                                batch_size=batch)  # fmt: skip
        catalog.register_stage(f"n{i}", FACTORY, pool)
        retry = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0)
        specs.append(StageSpec(f"n{i}", retry=retry, timeout_s=60))
    catalog.register_pipeline(Pipeline("noop", tuple(specs), "no-op stages"))
    return catalog


def _settings(cfg: CeilingConfig, tag: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=cfg.kafka, redis_url=cfg.redis_url, redis_prefix=f"bench:{tag}:",
        runtime_name=f"ceiling-{tag}", consumer_group=f"ceiling-{tag}", metrics_port=-1,
        topic_requests=f"bench.{tag}.requests", topic_results=f"bench.{tag}.results",
        topic_mapping=f"bench.{tag}.mapping", topic_deadletter=f"bench.{tag}.dlq",
        topic_partitions=1, sections={"simulate": {"page_s": 0.0}},
    )  # fmt: skip


def _admit(settings: Settings, count: int, prefix: str) -> list[Any]:
    """Create ``count`` jobs in the ledger; answers their work items (what ingress hands over)."""
    ledger = open_ledger(settings)
    items = []
    try:
        for start in range(0, count, HANDOVER):
            requests = [
                IngestRequest(tenant_id=TENANT, doc_key=f"{prefix}-{i}", pipeline="noop",
                              source=DocumentSource(kind=SourceKind.TEXT, value=f"d{i}"))
                for i in range(start, min(count, start + HANDOVER))
            ]  # fmt: skip
            outcomes = ledger.create_many([new_job(r, "noop") for r in requests])
            refused = [o for o in outcomes if isinstance(o, Exception)]
            if refused:
                raise refused[0]
            record = RawRecord("-", 0, 0, None, None)
            items += [work_item(Admitted(r, o, record, "noop"))
                      for r, o in zip(requests, outcomes, strict=True)]  # fmt: skip
    finally:
        ledger.close()
    return items


def _pids(runtime: Runtime) -> dict[str, int]:
    opts = runtime.options
    handles = {
        "Dispatcher": runtime.dispatcher,
        "RelayActor": ray.get_actor(opts.relay_name, namespace=opts.namespace),
    }
    refs = {n: h.__ray_call__.remote(lambda _self: os.getpid()) for n, h in handles.items()}
    return {n: int(ray.get(r, timeout=60)) for n, r in refs.items()}


def _hand_over(runtime: Runtime, items: list[Any]) -> float:
    first = time.time()
    for start in range(0, len(items), HANDOVER):
        ray.get(runtime.dispatcher.submit.remote(items[start : start + HANDOVER]), timeout=120)
    return first


def _wait(settings: Settings, count: int) -> None:
    ledger = open_ledger(settings)
    try:
        wait_until(lambda: ledger.counts(tenant_id=TENANT)[JobStatus.COMPLETED] >= count,
                   timeout_s=900, what="no-op jobs", poll_s=0.2)  # fmt: skip
    finally:
        ledger.close()


def _last_finished_at(settings: Settings) -> float:
    ledger = open_ledger(settings)
    try:
        return _last_finished(ledger)
    finally:
        ledger.close()


def _last_finished(ledger: Any) -> float:
    last, cursor = 0.0, None
    while True:
        flt = JobFilter(tenant_id=TENANT, status=JobStatus.COMPLETED)
        page = ledger.list_jobs(flt, cursor=cursor, limit=1000)
        last = max([last, *(j.finished_at.timestamp() for j in page.items if j.finished_at)])
        cursor = page.next_cursor
        if cursor is None:
            return last


def run_once(cfg: CeilingConfig, stages: int) -> dict[str, Any]:
    """One runtime, a warm-up, then ``cfg.jobs`` no-op jobs through ``stages`` stages."""
    tag = uuid.uuid4().hex[:8]
    settings = _settings(cfg, tag)
    KafkaClient.from_settings(settings).ensure_topics()
    ray.init(address="local", num_cpus=8, include_dashboard=False, namespace=NAMESPACE,
             log_to_driver=False)  # fmt: skip
    runtime = Runtime(settings, _catalog(stages, cfg.batch_size),
                      RuntimeOptions(namespace=NAMESPACE, name=settings.runtime_name))  # fmt: skip
    try:
        runtime.start()
        warm = _admit(settings, 300, "warm")
        _hand_over(runtime, warm)
        _wait(settings, len(warm))
        items = _admit(settings, cfg.jobs, "job")
        meter = CpuMeter({**server_pids(cfg.redis_url, cfg.kafka),
                          **{f"{n} actor": p for n, p in _pids(runtime).items()}})  # fmt: skip
        meter.start()
        first = _hand_over(runtime, items)
        _wait(settings, len(warm) + len(items))
        cpu = meter.stop()  # before the read-back below, which is not part of the run
        return _figures(stages, len(items), _last_finished_at(settings) - first, cpu)
    finally:
        runtime.shutdown()
        ray.shutdown()
        client = redis.Redis.from_url(cfg.redis_url)
        delete_prefix(client, settings.redis_prefix)
        client.close()


def _figures(stages: int, jobs: int, wall: float, cpu: dict[str, float]) -> dict[str, Any]:
    parts = ("Dispatcher actor", "RelayActor actor", "redis-server (shared)")
    per_job = {p: round(cpu.get(p, 0.0) * 1000 / jobs, 3) for p in parts}
    return {
        "stages": stages, "jobs": jobs, "wall_s": round(wall, 2),
        "jobs_per_s": round(jobs / wall, 1), "transitions_per_job": stages + 1,
        "cpu_ms_per_job": per_job,
        "ceiling_jobs_per_s_one_core": {p: round(1000 / ms) for p, ms in per_job.items() if ms},
        "cpu_s": cpu,
    }  # fmt: skip


def main() -> None:
    """Parse, run each pipeline length, print and save."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dispatcher_ceiling",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--stages", default="1,4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cfg = CeilingConfig(
        jobs=args.jobs, stages=tuple(int(s) for s in args.stages.split(",")),
        kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", CeilingConfig.kafka),
        redis_url=os.environ.get("REDIS_URL", CeilingConfig.redis_url),
    )  # fmt: skip
    runs = []
    for stages in cfg.stages:
        runs.append(run_once(cfg, stages))
        print(json.dumps(runs[-1]), flush=True)
    out = {"benchmark": "dispatcher_ceiling", "machine": machine_info(), "config": asdict(cfg),
           "runs": runs}  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
