"""Running the Celery and Dramatiq peers: a worker subprocess with two processes, the driver
submitting one chain/pipeline per job, completion read from the last stage's writes.

Each peer gets a Redis database of its own for its broker (flushed before and after the run);
the stages write into the same Redis as ingest_ray's, under a per-run prefix. The worker runs in
a new session and its process group is stopped at the end (only the group this module started).
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import redis

from benchmarks.common import (
    STAGES,
    BenchConfig,
    SystemResult,
    delete_prefix,
    paced,
    stage_key,
    stage_times,
    summarize,
    timeline,
    wait_until,
)
from benchmarks.cpu import CpuMeter


@dataclass(frozen=True, slots=True)
class Peer:
    """One peer system: the module the worker and the driver load, and the worker command."""

    system: str
    module: str
    db: int
    worker_args: tuple[str, ...]

    def command(self) -> list[str]:
        """The worker command line (run with this interpreter)."""
        return [sys.executable, "-m", *self.worker_args]


def celery_peer(cfg: BenchConfig) -> Peer:
    """Celery: ``chain`` of four tasks, prefork pool with two processes, ``acks_late``."""
    return Peer(
        "celery", "benchmarks.orchestration.celery_app", cfg.celery_db,
        ("celery", "-A", "benchmarks.orchestration.celery_app", "worker", "--concurrency", "2",
         "--pool", "prefork", "--loglevel", "WARNING"),
    )  # fmt: skip


def dramatiq_peer(cfg: BenchConfig, threads: int = 1) -> Peer:
    """Dramatiq: ``pipeline`` of four actors, two processes of ``threads`` threads each."""
    return Peer(
        "dramatiq" if threads == 1 else f"dramatiq_t{threads}",
        "benchmarks.orchestration.dramatiq_app", cfg.dramatiq_db,
        ("dramatiq", "benchmarks.orchestration.dramatiq_app", "--processes", "2",
         "--threads", str(threads)),
    )  # fmt: skip


def run_peer(cfg: BenchConfig, peer: Peer) -> SystemResult:
    """Warm the worker up, then submit and time the measured jobs."""
    ns = cfg.namespace(peer.system)
    broker_url = cfg.redis_db_url(peer.db)
    env = {
        "INGEST_RAY_BENCH_BROKER": broker_url, "INGEST_RAY_BENCH_REDIS": cfg.redis_url,
        "INGEST_RAY_BENCH_NS": ns, "INGEST_RAY_BENCH_QUEUE": f"bench-{cfg.run_id}",
    }  # fmt: skip
    os.environ.update(env)  # the driver loads the same module to submit
    broker = redis.Redis.from_url(broker_url)
    client = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    broker.flushdb()
    log = Path(tempfile.mkstemp(prefix=f"bench-{peer.system}-", suffix=".log")[1])
    worker = _start_worker(peer, log)
    try:
        module = _load(peer.module)
        warm = cfg.docs(peer.system, cfg.warmup, tag="warm")
        _run_jobs(module, warm)
        _wait_hlen(client, ns, cfg.warmup, timeout_s=180, what=f"{peer.system} warm-up",
                   worker=worker, log=log)  # fmt: skip
        docs = cfg.docs(peer.system)
        meter = CpuMeter(cfg.servers)
        meter.start()
        submitted = _run_jobs(module, docs, cfg.rate)
        _wait_hlen(client, ns, cfg.warmup + cfg.jobs, timeout_s=cfg.timeout_s, what=peer.system,
                   worker=worker, log=log)  # fmt: skip
        cpu = meter.stop()
        points = stage_times(client, ns, docs)
        return summarize(peer.system, submitted, points[STAGES[-1]], completion="s4 write time",
                         worker=" ".join(peer.worker_args),
                         timeline=timeline(submitted, points), cpu_s=cpu)  # fmt: skip
    finally:
        _stop_worker(worker)
        delete_prefix(client, ns)
        broker.flushdb()
        broker.close()
        client.close()
        log.unlink(missing_ok=True)


def _load(name: str) -> ModuleType:
    """Import (or re-import, so the environment just set is read) the peer's module."""
    module = sys.modules.get(name)
    return importlib.reload(module) if module is not None else importlib.import_module(name)


def _run_jobs(module: ModuleType, docs: list[str], rate: float = 0.0) -> dict[str, float]:
    submitted: dict[str, float] = {}
    for doc in paced(docs, rate):
        t0 = time.time()
        module.submit(doc, t0)
        submitted[doc] = t0
    return submitted


def _wait_hlen(
    client: redis.Redis, ns: str, expected: int, *, timeout_s: float, what: str,
    worker: subprocess.Popen[bytes], log: Path,
) -> None:  # fmt: skip
    key = stage_key(ns, STAGES[-1])

    def done() -> bool:
        if worker.poll() is not None:
            raise RuntimeError(f"{what}: worker exited ({worker.returncode}):\n{_tail(log)}")
        return int(client.hlen(key)) >= expected

    try:
        wait_until(done, timeout_s=timeout_s, what=what, poll_s=0.05)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; worker log:\n{_tail(log)}") from exc


def _start_worker(peer: Peer, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            peer.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ),
        )  # fmt: skip


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop the worker's process group (the session this module created for it)."""
    if worker.poll() is not None:
        return
    group = os.getpgid(worker.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        worker.wait(timeout=10)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
