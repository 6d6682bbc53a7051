"""Ledger throughput: one round trip per job versus the batch variants, on a real Redis.

    python -m benchmarks.ledger_throughput --jobs 20000 --json benchmarks/results/ledger.json

Prints jobs/s for create and for queued->processing->completed, single and batched, and the
batch/single ratios. Uses a throw-away key prefix and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from ingest_ray.ledger import NewJob, TransitionRequest
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


def run(url: str, n: int, batch: int) -> dict[str, float]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    ledger = RedisLedger(url, prefix=prefix)
    out: dict[str, float] = {}
    try:
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
    finally:
        ledger.close()
        client = redis.Redis.from_url(url)
        for keys in _chunks(list(client.scan_iter(match=f"{prefix}*", count=5000)), 5000):
            client.unlink(*keys)
        client.close()
    return out


def _chunks(items: list[bytes], size: int) -> list[list[bytes]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = {"jobs": args.jobs, "batch": args.batch, **run(args.redis_url, args.jobs, args.batch)}
    for key, value in result.items():
        print(f"{key:>32}: {value:,.1f}" if isinstance(value, float) else f"{key:>32}: {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
