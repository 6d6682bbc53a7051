"""Scale-out: a simulated accelerator stage on 1, 2 and 3 worker nodes of a local Ray cluster.

    python -m benchmarks.scaleout --nodes 1,2,3 --jobs 48 --pages 4 --page-s 0.25 \
        --json benchmarks/results/scaleout.json

For each size a fresh :class:`~ingest_ray.simulate.cluster.LocalCluster` is started: a head that
carries the control plane (``ingest_control``) and no CPUs for stages, and ``n`` worker nodes
that each carry one ``accelerator`` (a raylet each). The pipeline ``simulated`` has one stage,
:class:`~ingest_ray.simulate.accelerator.SimulatedAccelerator`, which holds its actor's
accelerator for ``page_s`` per page; its pool may grow to 8 actors, and grows to what the
cluster can place. Requests go through Kafka, the ledger and the Dispatcher as in production;
throughput is pages / (last ``finished_at`` - first submit). Kafka and Redis come from
``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` (``ingest-ray stack up``).

This is the multi-node scale-out. (A single-node benchmark of GPU slots lives elsewhere in
``benchmarks/``; both simulate a device by holding a custom resource.)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray
import redis
from ray.util.state import list_actors

from benchmarks.common import delete_prefix, machine_info, wait_until
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka.admin import delete_topics
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.base import JobFilter, Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.simulate.accelerator import PIPELINE, accelerator_pool, register_simulated
from ingest_ray.simulate.cluster import LocalCluster
from ingest_ray.simulate.spec import NodeSpec
from ingest_ray.states import JobStatus

CONTROL = "ingest_control"
RESOURCE = "accelerator"


@dataclass(frozen=True)
class ScaleConfig:
    """One invocation: the sizes and the work."""

    nodes: tuple[int, ...] = (1, 2, 3)
    jobs: int = 48
    pages: int = 4
    page_s: float = 0.25
    devices_per_node: int = 1
    pool_max: int = 8
    kafka: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"


def _cluster(cfg: ScaleConfig, n: int, log: Path) -> LocalCluster:
    head = NodeSpec(name="head", num_cpus=0, resources={CONTROL: 1})
    workers = [
        NodeSpec(name=f"accel-{i + 1}", num_cpus=2, resources={RESOURCE: cfg.devices_per_node})
        for i in range(n)
    ]
    return LocalCluster(head, workers, log=log)


def _settings(cfg: ScaleConfig, tag: str, address: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=cfg.kafka, redis_url=cfg.redis_url, ray_address=address,
        redis_prefix=f"bench:scale:{tag}:", consumer_group=f"scale-{tag}",
        runtime_name=f"scale-{tag}",
        topic_requests=f"bench.{tag}.requests", topic_results=f"bench.{tag}.results",
        topic_mapping=f"bench.{tag}.mapping", topic_deadletter=f"bench.{tag}.dlq",
        topic_partitions=3, control_resource=CONTROL, metrics_port=-1,
        sections={"simulate": {"page_s": cfg.page_s}},
    )  # fmt: skip


def _catalog(cfg: ScaleConfig) -> Catalog:
    catalog = Catalog()
    register_simulated(catalog, accelerator_pool(resource=RESOURCE, max_size=cfg.pool_max))
    return catalog


def _submit(settings: Settings, tenant: str, count: int, pages: int) -> dict[str, float]:
    sent: dict[str, float] = {}
    with KafkaClient.from_settings(settings).producer() as producer:
        for i in range(count):
            doc = f"{tenant}-{i}"
            request = IngestRequest(
                tenant_id=tenant, doc_key=doc, source=DocumentSource(kind=SourceKind.TEXT,
                value=doc), pipeline=PIPELINE, metadata={"pages": pages},
            )  # fmt: skip
            sent[doc] = time.time()
            producer.send(settings.topic_requests, request, key=doc)
    return sent


def _jobs(ledger: Ledger, tenant: str) -> list[Any]:
    jobs, cursor = [], None
    while True:
        page = ledger.list_jobs(JobFilter(tenant_id=tenant), cursor=cursor, limit=1000)
        jobs += page.items
        cursor = page.next_cursor
        if cursor is None:
            return jobs


def _wait_done(ledger: Ledger, tenant: str, count: int, timeout_s: float) -> list[Any]:
    """The jobs of ``tenant`` once ``count`` completed; raises when one failed."""

    def done() -> bool:
        counts = ledger.counts(tenant_id=tenant)
        if counts[JobStatus.FAILED]:
            failed = [j for j in _jobs(ledger, tenant) if j.status is JobStatus.FAILED]
            raise RuntimeError(f"{tenant}: {len(failed)} job(s) failed, e.g. {failed[0].error}")
        return counts[JobStatus.COMPLETED] >= count

    wait_until(done, timeout_s=timeout_s, what=f"{tenant}: {count} jobs", poll_s=0.2)
    return [j for j in _jobs(ledger, tenant) if j.status is JobStatus.COMPLETED]


def _placement(cluster: LocalCluster, runtime: str) -> dict[str, int]:
    """Alive ``accelerate`` actors per node name, from Ray's state API."""
    names = cluster.node_names()
    actors = list_actors(
        address=cluster.dashboard_url, filters=[("state", "=", "ALIVE")], limit=10_000,
        raise_on_missing_output=False,
    )  # fmt: skip
    mine = [a for a in actors if (a.name or "").startswith(f"{runtime}/accelerate/")]
    return dict(Counter(names.get(a.node_id or "", "?") for a in mine))


def run_size(cfg: ScaleConfig, n: int, log: Path) -> dict[str, Any]:
    """Start an n-node cluster, warm the pool up, measure ``cfg.jobs`` documents."""
    tag = uuid.uuid4().hex[:8]
    with _cluster(cfg, n, log) as cluster:
        settings = _settings(cfg, tag, cluster.address)
        KafkaClient.from_settings(settings).ensure_topics()
        runtime = Runtime(settings, _catalog(cfg), RuntimeOptions(
            namespace="ingest-ray-scaleout", name=settings.runtime_name))  # fmt: skip
        ledger = open_ledger(settings)
        try:
            runtime.start()
            runtime.start_ingress(1, tag="bench")
            warm = n * cfg.devices_per_node * 4
            _wait_done(ledger, "warm", len(_submit(settings, "warm", warm, 1)), 300)
            sent = _submit(settings, "bench", cfg.jobs, cfg.pages)
            done = _wait_done(ledger, "bench", cfg.jobs, 60 + 4 * cfg.jobs * cfg.pages * cfg.page_s)
            return _figures(cfg, n, sent, done, _placement(cluster, settings.runtime_name),
                            cluster.node_names())  # fmt: skip
        finally:
            runtime.shutdown()
            ray.shutdown()
            ledger.close()
            _cleanup(settings)


def _figures(
    cfg: ScaleConfig, n: int, sent: dict[str, float], done: list[Any],
    placement: dict[str, int], names: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    wall = max(j.finished_at.timestamp() for j in done) - min(sent.values())
    pages = sum(int(j.outputs["accelerate"]["pages"]) for j in done)
    by_node = Counter(names.get(j.outputs["accelerate"]["node_id"], "?") for j in done)
    ideal = n * cfg.devices_per_node / cfg.page_s
    return {
        "nodes": n, "jobs": len(done), "pages": pages, "wall_s": round(wall, 2),
        "pages_per_s": round(pages / wall, 2), "jobs_per_s": round(len(done) / wall, 2),
        "ideal_pages_per_s": round(ideal, 2), "efficiency": round(pages / wall / ideal, 3),
        "accelerator_actors_by_node": placement, "jobs_by_node": dict(by_node),
    }  # fmt: skip


def _cleanup(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        delete_prefix(client, settings.redis_prefix)
    finally:
        client.close()
    delete_topics(settings.kafka_bootstrap_servers, list(settings.topics))


def main() -> None:
    """Parse the options, run every size, print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaleout", description=__doc__)
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--jobs", type=int, default=48)
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--page-s", type=float, default=0.25)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cfg = ScaleConfig(
        nodes=tuple(int(x) for x in args.nodes.split(",")), jobs=args.jobs, pages=args.pages,
        page_s=args.page_s, kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ScaleConfig.kafka),
        redis_url=os.environ.get("REDIS_URL", ScaleConfig.redis_url),
    )  # fmt: skip
    log = Path(tempfile.mkdtemp(prefix="scaleout-")) / "cluster.log"
    started = time.time()
    runs = []
    for n in cfg.nodes:
        runs.append(run_size(cfg, n, log))
        print(json.dumps(runs[-1]), flush=True)
    base = runs[0]["pages_per_s"]
    out = {
        "benchmark": "scaleout", "machine": machine_info(), "config": asdict(cfg),
        "started_at": started, "runs": runs,
        "speedup": {str(r["nodes"]): round(r["pages_per_s"] / base, 2) for r in runs},
    }  # fmt: skip
    print(json.dumps(out["speedup"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
