"""Ledger throughput, Redis and PostgreSQL side by side: one round trip per job versus the batch
variants, in one invocation.

    python -m benchmarks.ledger_throughput --jobs 5000 --json benchmarks/results/ledger.json

For each backend: jobs/s for create and for queued -> processing -> completed, single and
batched, and the batch/single ratios. Redis is the one at ``--redis-url`` (a throw-away key
prefix, removed afterwards). PostgreSQL is ``--postgres-dsn`` when given, else a throw-away
cluster started here with PostgreSQL's durable defaults (fsync and synchronous commit on, as a
production server runs); the ledger lives in a throw-away schema. ``redis-everysec`` and
``redis-always`` are throw-away redis-servers started here with AOF and that ``appendfsync``, so
the two durability settings are measured the same way. ``--backends`` picks which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from ingest_ray.index.pgstack import TempPostgres
from ingest_ray.ledger import Ledger, NewJob, TransitionRequest
from ingest_ray.ledger.migrate import drop_schema
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.states import JobStatus as S


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _jobs(n: int, tag: str) -> list[NewJob]:
    return [NewJob("bench", f"doc:{tag}:{i}", "auto") for i in range(n)]


def _lifecycle(ids: list[str]) -> list[list[TransitionRequest]]:
    return [
        [TransitionRequest(i, S.QUEUED, S.PROCESSING, stage="noop", lease_s=60) for i in ids],
        [TransitionRequest(i, S.PROCESSING, S.COMPLETED) for i in ids],
    ]


def measure(ledger: Ledger, n: int, batch: int) -> dict[str, float]:
    """The four figures and two ratios on one ledger."""
    out: dict[str, float] = {}
    single = _jobs(n, "s")
    out["create_single_per_s"] = n / _timed(lambda: [ledger.create(j) for j in single])
    batched = _jobs(n, "b")
    chunks = [batched[i : i + batch] for i in range(0, n, batch)]
    out["create_batch_per_s"] = n / _timed(lambda: [ledger.create_many(c) for c in chunks])

    def single_moves() -> None:
        for step in _lifecycle([j.job_id for j in single]):
            for req in step:
                ledger.transition(req)

    def batch_moves() -> None:
        for step in _lifecycle([j.job_id for j in batched]):
            for i in range(0, n, batch):
                ledger.transition_many(step[i : i + batch])

    out["lifecycle_single_jobs_per_s"] = n / _timed(single_moves)
    out["lifecycle_batch_jobs_per_s"] = n / _timed(batch_moves)
    out["create_batch_over_single"] = out["create_batch_per_s"] / out["create_single_per_s"]
    out["lifecycle_batch_over_single"] = (
        out["lifecycle_batch_jobs_per_s"] / out["lifecycle_single_jobs_per_s"]
    )
    return out


def run_redis(url: str, n: int, batch: int) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    ledger = RedisLedger(url, prefix=prefix)
    client = redis.Redis.from_url(url)
    try:
        info: Any = client.info("server")
        persistence: Any = client.config_get("append*")
        figures: dict[str, Any] = measure(ledger, n, batch)
        figures["server"] = f"Redis {info['redis_version']}"
        figures["durability"] = (
            f"appendonly={persistence.get('appendonly')}, "
            f"appendfsync={persistence.get('appendfsync')}"
        )
        return figures
    finally:
        ledger.close()
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        for i in range(0, len(keys), 5000):
            client.unlink(*keys[i : i + 5000])
        client.close()


@contextmanager
def _temp_redis(appendfsync: str) -> Iterator[str]:
    """A redis-server of its own, AOF on with this fsync policy, on a free loopback port."""
    import shutil  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as home:
        server = shutil.which("redis-server") or "/usr/sbin/redis-server"
        proc = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", home, "--save", "",
             "--appendonly", "yes", "--appendfsync", appendfsync],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for _ in range(100):
                try:
                    if redis.Redis.from_url(url, socket_timeout=0.5).ping():
                        break
                except redis.RedisError:
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def _postgres(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    with TempPostgres(extensions=(), durable=True) as cluster:
        yield cluster.dsn


def run_postgres(dsn: str | None, n: int, batch: int) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with _postgres(dsn) as url:
        ledger = PostgresLedger(url, schema=schema)
        try:
            ledger.ping()  # applies the migrations outside the measurement
            figures: dict[str, Any] = measure(ledger, n, batch)
            with psycopg.connect(url) as conn:
                row: Any = conn.execute(
                    "SELECT version(), current_setting('fsync'),"
                    " current_setting('synchronous_commit')"
                ).fetchone()
            figures["server"] = str(row[0]).split(" on ")[0]
            figures["durability"] = f"fsync={row[1]}, synchronous_commit={row[2]}"
            figures["dsn"] = "given" if dsn else "TempPostgres(durable=True)"
            return figures
        finally:
            ledger.close()
            drop_schema(url, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="redis,postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-dsn", default=None)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "jobs": args.jobs, "batch": args.batch, "at": datetime.now(UTC).isoformat(),
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }  # fmt: skip
    for backend in args.backends.split(","):
        if backend == "redis":
            result["redis"] = run_redis(args.redis_url, args.jobs, args.batch)
        elif backend in ("redis-everysec", "redis-always"):
            with _temp_redis(backend.split("-")[1]) as url:
                result[backend] = run_redis(url, args.jobs, args.batch)
        elif backend == "postgres":
            result["postgres"] = run_postgres(args.postgres_dsn, args.jobs, args.batch)
        else:
            parser.error(f"unknown backend {backend!r}")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
