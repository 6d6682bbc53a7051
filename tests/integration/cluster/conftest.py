"""One multi-node cluster and two runs on it, shared by the tests of this directory.

A :class:`~ingest_ray.simulate.cluster.LocalCluster` (head + ``cpu`` + ``gpu-1`` + ``gpu-2``,
each its own raylet) with artifacts in a bucket of the loopback S3 server and the index in
pgvector; each run's ingest worker joins it with ``RAY_ADDRESS``.

1. ``run``: the control plane pinned to the head (``INGEST_RAY_CONTROL_RESOURCE``). Real
   documents run the real stages of ``auto`` and ``two_phase``; scripted twins of both pipelines
   add volume in the same pools. While scripted MinerU calls run, the raylet of the node that
   hosts the MinerU actor is killed.
2. ``control_loss``: a second runtime whose control plane may live on any worker node (they all
   carry ``ingest_control_alt``); the raylet of the node hosting its Dispatcher is killed.

``MULTINODE_FORM=long`` runs more documents; ``MULTINODE_REPORT=path`` writes a JSON summary
(``python -m benchmarks.multinode`` does both).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.simulate.cluster import LocalCluster
from ingest_ray.simulate.spec import NodeSpec
from tests.conftest import FIXTURES, Services
from tests.integration.cluster.scenario import (
    ALT_CONTROL,
    CONTROL,
    HEAD,
    MINERU,
    ROOT,
    TENANT,
    WORKERS,
    Plan,
    Worker,
    without_ray_address,
)
from tests.integration.cluster.steps import (
    Run,
    drop_tables,
    execute,
    execute_control_loss,
    summary,
)
from tests.integration.index.conftest import pg_dsn  # noqa: F401  (the session fixture)
from tests.s3server import S3Server

PLUGIN = "ingest_ray.simulate.pipelines:register_scripted_twins"
LONG = os.environ.get("MULTINODE_FORM", "short") == "long"


def _node_env(services: Services, s3: S3Server, dsn: str, tag: str) -> dict[str, str]:
    """What every node (and every driver) gets: shared storage, the index, Kafka, Redis."""
    return {
        **without_ray_address(), **s3.env(),
        "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap, "REDIS_URL": services.redis_url,
        "INGEST_RAY_BLOB_URL": f"s3://{s3.new_bucket('mn')}/blobs",
        "INGEST_RAY_INDEX_URI": dsn, "INGEST_RAY_CHUNKS_TABLE": f"mn_chunks_{tag}",
        "INGEST_RAY_ENTITIES_TABLE": f"mn_mentions_{tag}",
    }  # fmt: skip


def _runtime_env(base: dict[str, str], tag: str, control: str, tmp: Path) -> dict[str, str]:
    """One runtime's names, topics and pools on top of the node environment."""
    return {
        **base,
        "INGEST_RAY_REDIS_PREFIX": f"test:mn:{tag}:", "INGEST_RAY_RUNTIME_NAME": f"mn-{tag}",
        "INGEST_RAY_CONSUMER_GROUP": f"mn-{tag}", "INGEST_RAY_TOPIC_PARTITIONS": "3",
        "INGEST_RAY_TOPIC_REQUESTS": f"test.{tag}.requests",
        "INGEST_RAY_TOPIC_RESULTS": f"test.{tag}.results",
        "INGEST_RAY_TOPIC_MAPPING": f"test.{tag}.mapping",
        "INGEST_RAY_TOPIC_DEADLETTER": f"test.{tag}.dlq",
        "INGEST_RAY_MINERU_RESOURCE": MINERU, "INGEST_RAY_MINERU_POOL_MAX": "1",
        "INGEST_RAY_CONTROL_RESOURCE": control, "INGEST_RAY_METRICS_PORT": "-1",
        "INGEST_RAY_PLUGINS": json.dumps([PLUGIN]),
        "INGEST_RAY_STATE_DIR": str(tmp / f"state-{tag}"),
    }  # fmt: skip


def _nodes(tmp: Path) -> list[NodeSpec]:
    """Each worker node with a blob cache of its own, as separate machines would have."""
    cache = "INGEST_RAY_BLOB_CACHE_DIR"
    return [w.model_copy(update={"env": {cache: str(tmp / w.name / "blob-cache")}})
            for w in WORKERS]  # fmt: skip


@pytest.fixture(scope="module")
def cluster_env(
    services: Services, s3_server: S3Server, pg_dsn: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalCluster, dict[str, str], Path]]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("multinode")
    env = _node_env(services, s3_server, pg_dsn, uuid.uuid4().hex[:8])
    cluster = LocalCluster(HEAD, _nodes(tmp), env=env, log=tmp / "cluster.log")
    try:
        cluster.start()
        yield cluster, env, tmp
    finally:
        cluster.stop()
        drop_tables(pg_dsn, env["INGEST_RAY_CHUNKS_TABLE"], env["INGEST_RAY_ENTITIES_TABLE"])


def _session(
    services: Services, cluster_env: tuple[LocalCluster, dict[str, str], Path], control: str
) -> tuple[Run, RedisLedger, Worker]:
    cluster, base, tmp = cluster_env
    tag = uuid.uuid4().hex[:8]
    env = _runtime_env(base, tag, control, tmp)
    topics = [env[f"INGEST_RAY_TOPIC_{t}"] for t in ("REQUESTS", "RESULTS", "MAPPING",
                                                       "DEADLETTER")]  # fmt: skip
    KafkaClient(services.kafka_bootstrap, partitions=3).ensure_topics(topics)
    ledger = RedisLedger(services.redis_url, prefix=env["INGEST_RAY_REDIS_PREFIX"])
    run = Run(cluster, env["INGEST_RAY_RUNTIME_NAME"], env, env["INGEST_RAY_CHUNKS_TABLE"])
    worker = Worker({**env, "RAY_ADDRESS": cluster.address}, tmp / f"worker-{tag}.log")
    return run, ledger, worker


def _finish(services: Services, run: Run, ledger: RedisLedger, worker: Worker) -> None:
    worker.stop()
    ledger.close()
    client = redis.Redis.from_url(services.redis_url)
    keys = list(client.scan_iter(match=f"{run.env['INGEST_RAY_REDIS_PREFIX']}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def _report(name: str, run: Run) -> None:
    path = os.environ.get("MULTINODE_REPORT")
    if not path:
        return
    target = Path(path)
    existing: dict[str, Any] = json.loads(target.read_text()) if target.exists() else {}
    existing[name] = summary(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(existing, indent=2) + "\n")


@pytest.fixture(scope="module")
def run(
    services: Services, cluster_env: tuple[LocalCluster, dict[str, str], Path]
) -> Iterator[Run]:
    """Both pipelines, control plane on the head, the MinerU node lost mid-call."""
    run, ledger, worker = _session(services, cluster_env, CONTROL)
    try:
        worker.start()
        execute(run, ledger, Plan.long() if LONG else Plan(), worker, FIXTURES)
        run.worker_exit = worker.stop()
        run.worker_log = worker.tail()
        _report("node_loss", run)
        yield run
    finally:
        _finish(services, run, ledger, worker)


@pytest.fixture(scope="module")
def control_loss(
    services: Services, cluster_env: tuple[LocalCluster, dict[str, str], Path], run: Run
) -> Iterator[Run]:
    """After ``run``: a runtime whose control plane lives on a worker node that is lost."""
    run2, ledger, worker = _session(services, cluster_env, ALT_CONTROL)
    try:
        worker.start()
        execute_control_loss(run2, ledger, 120 if LONG else 24, worker)
        run2.worker_exit = worker.stop()
        run2.worker_log = worker.tail()
        _report("control_plane_loss", run2)
        yield run2
    finally:
        _finish(services, run2, ledger, worker)


def search(env: dict[str, str], query: str) -> list[dict[str, object]]:
    """``ingest-ray search --json`` on this (the driver's) machine, from the environment only."""
    done = subprocess.run(
        [sys.executable, "-m", "ingest_ray", "search", query, "--k", "5", "--tenant", TENANT,
         "--json"],
        env=env, cwd=ROOT, capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    hits: list[dict[str, object]] = json.loads(done.stdout)
    return hits
