"""What every benchmarked system shares: the per-stage Redis write, the run configuration, the
timing summary and key clean-up.

The no-op stage of every system performs the same write per job and stage::

    HSET {ns}bench:{stage} {doc_key} {epoch seconds}

so the value written by the last stage (``s4``) is the time that job's pipeline ended. Batched
callers send the same commands, one pipeline per batch.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import redis

STAGES: tuple[str, ...] = ("s1", "s2", "s3", "s4")


T = TypeVar("T")


def stage_key(ns: str, stage: str) -> str:
    """The hash one stage writes into."""
    return f"{ns}bench:{stage}"


_PROCESS_CLIENTS: dict[tuple[int, str], redis.Redis] = {}


def process_redis(url: str) -> redis.Redis:
    """One Redis connection per process and URL, made lazily in the process that uses it
    (peer workers fork, and a socket must not cross a fork)."""
    key = (os.getpid(), url)
    client = _PROCESS_CLIENTS.get(key)
    if client is None:
        client = _PROCESS_CLIENTS[key] = redis.Redis.from_url(url, decode_responses=True)
    return client


def write_one(client: redis.Redis, ns: str, stage: str, doc_key: str) -> float:
    """The no-op stage's side effect for one job; answers the time written."""
    now = time.time()
    client.hset(stage_key(ns, stage), doc_key, repr(now))
    return now


def write_many(client: redis.Redis, ns: str, stage: str, doc_keys: Sequence[str]) -> float:
    """The same writes for a batch of jobs, in one pipelined round trip."""
    now = time.time()
    key, value = stage_key(ns, stage), repr(now)
    pipe = client.pipeline(transaction=False)
    for doc_key in doc_keys:
        pipe.hset(key, doc_key, value)
    pipe.execute()
    return now


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """One benchmark invocation (every system gets the same jobs count)."""

    jobs: int = 20000
    warmup: int = 200
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap: str = "127.0.0.1:9092"
    celery_db: int = 2
    dramatiq_db: int = 3
    #: one Dramatiq run per entry: threads per worker process (1 is the primary figure)
    dramatiq_threads: tuple[int, ...] = (1, 8)
    ray_batch: int = 256
    #: jobs per second offered (open loop: job i is submitted at start + i / rate whether or not
    #: earlier ones finished); 0 submits as fast as the client can (the throughput run)
    rate: float = 0.0
    timeout_s: float = 900.0
    #: pids of the local Redis and Kafka servers, to count their CPU too (label -> pid)
    servers: dict[str, int] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: f"{int(time.time())}-{os.getpid()}")

    def namespace(self, system: str) -> str:
        """A Redis key prefix unique to this run and system."""
        return f"bench:{self.run_id}:{system}:"

    def docs(self, system: str, count: int | None = None, *, tag: str = "job") -> list[str]:
        """Document keys of one system's run (``warm`` ones for the warm-up)."""
        n = self.jobs if count is None else count
        return [f"{system}-{tag}-{self.run_id}-{i}" for i in range(n)]

    def redis_db_url(self, db: int) -> str:
        """``redis_url`` with another database number (the peers' brokers)."""
        base = self.redis_url.rsplit("/", 1)[0] if self.redis_url.count("/") > 2 else self.redis_url
        return f"{base}/{db}"


@dataclass
class SystemResult:
    """Figures of one system."""

    system: str
    jobs: int
    wall_s: float
    jobs_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded."""
        out = asdict(self)
        for name in ("wall_s", "jobs_per_s", "p50_ms", "p99_ms", "mean_ms", "max_ms"):
            out[name] = round(out[name], 3)
        return out


def paced(items: Sequence[T], rate: float) -> Iterator[T]:
    """``items`` one by one, each at its scheduled time (``rate`` per second; 0: no pacing)."""
    start = time.monotonic()
    for i, item in enumerate(items):
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield item


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(
    system: str, submitted: Mapping[str, float], finished: Mapping[str, float], **notes: Any
) -> SystemResult:
    """Throughput (jobs / (last finish - first submit)) and per-job latency figures; a
    ``cpu_s`` note (see :class:`~benchmarks.cpu.CpuMeter`) adds CPU ms per job."""
    missing = [d for d in submitted if d not in finished]
    if missing:
        raise RuntimeError(f"{system}: {len(missing)} job(s) never finished (e.g. {missing[0]})")
    latencies = [(finished[d] - t0) * 1000 for d, t0 in submitted.items()]
    wall = max(finished[d] for d in submitted) - min(submitted.values())
    if "cpu_s" in notes:
        notes = {"cpu_ms_per_job": round(notes["cpu_s"]["total"] * 1000 / len(submitted), 3),
                 **notes}  # fmt: skip
    return SystemResult(
        system=system,
        jobs=len(submitted),
        wall_s=wall,
        jobs_per_s=len(submitted) / wall if wall > 0 else math.inf,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        mean_ms=sum(latencies) / len(latencies),
        max_ms=max(latencies),
        notes=notes,
    )


def finish_times(
    client: redis.Redis, ns: str, doc_keys: Sequence[str], stage: str = STAGES[-1]
) -> dict[str, float]:
    """The time ``stage`` (the last by default) wrote for each job it reached."""
    out: dict[str, float] = {}
    for start in range(0, len(doc_keys), 5000):
        chunk = doc_keys[start : start + 5000]
        values = client.hmget(stage_key(ns, stage), chunk)
        out.update({d: float(v) for d, v in zip(chunk, values, strict=True) if v is not None})
    return out


def stage_times(
    client: redis.Redis, ns: str, doc_keys: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per stage, the time it wrote for each job."""
    return {stage: finish_times(client, ns, doc_keys, stage) for stage in STAGES}


def timeline(
    submitted: Mapping[str, float], points: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """For each point of a job's path (admitted, s1, ..., completed): the median time from
    submit to that point, and when the last job reached it (ms after the first submit)."""
    first = min(submitted.values())
    out: dict[str, dict[str, float]] = {}
    for name, at in points.items():
        lat = [(at[d] - t0) * 1000 for d, t0 in submitted.items() if d in at]
        if lat:
            out[name] = {
                "p50_ms": round(percentile(lat, 50), 1),
                "last_at_ms": round((max(at.values()) - first) * 1000, 1),
            }
    return out


def wait_until(
    done: Callable[[], bool], *, timeout_s: float, what: str, poll_s: float = 0.05
) -> None:
    """Poll ``done`` until it holds; raise ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout_s:.0f}s")
        time.sleep(poll_s)


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Remove every key under ``prefix``; answers how many."""
    removed = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            removed += int(client.unlink(*batch))
            batch.clear()
    if batch:
        removed += int(client.unlink(*batch))
    return removed


CALIBRATION_LOOPS = 5_000_000


def cpu_calibration_s(loops: int = CALIBRATION_LOOPS, repeats: int = 3) -> float:
    """Seconds one core takes for a fixed pure-Python loop, the best of ``repeats``: a
    shared host's speed varies from day to day (the same embedding work took 36 CPU s on one
    day and 57-69 s on another), so figures from different runs compare only alongside it."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        total = 0
        for i in range(loops):
            total += i
        best = min(best, time.process_time() - start)
    return round(best, 3)


def machine_info(extra: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """Where the figures came from, with the host's speed at the start (``cpu_calibration_s``)."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "cpu_calibration_s": cpu_calibration_s(),
    }
    info.update(dict(extra))
    return info
