"""The orchestration benchmark: every selected system, sequentially, in one invocation, with the
same number of jobs; figures, ratios to Celery and to the Ray floors, written as JSON.

Order: the peers first (Celery, Dramatiq: before Ray starts, so its idle daemons do not share
the two cores with them), then ingest_ray and the Ray floors on one local Ray (ingest_ray first,
on a fresh cluster).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import ray
import redis

from benchmarks import cpu
from benchmarks.common import BenchConfig, SystemResult, machine_info
from benchmarks.orchestration.ingest_system import IngestTuning, run_ingest_ray
from benchmarks.orchestration.peers import celery_peer, dramatiq_peer, run_peer
from benchmarks.orchestration.ray_floor import run_ray_floor
from ingest_ray.config import Settings
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import connect_ray

SYSTEMS: tuple[str, ...] = ("celery", "dramatiq", "ingest_ray", "ray")
TARGET_OVER_CELERY = 15.0
TARGET_OVER_FLOOR = 0.5  # "within 2x of the raw-Ray floor"

Log = Callable[[str], None]


def run(
    cfg: BenchConfig,
    systems: Sequence[str] = SYSTEMS,
    *,
    tuning: IngestTuning | None = None,
    command: str = "",
    log: Log = print,
) -> dict[str, Any]:
    """Run ``systems`` and answer the report (see :func:`report`)."""
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"unknown system(s) {sorted(unknown)}; choose from {SYSTEMS}")
    missing = [s for s in ("celery", "dramatiq") if s in systems and find_spec(s) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed: pip install 'ingest-ray[bench]'")
    machine = machine_info()
    cfg = replace(cfg, servers=cfg.servers or server_pids(cfg))
    results: list[SystemResult] = []
    for system in (s for s in SYSTEMS if s in systems):
        for runner in _runners(system, cfg, tuning):
            log(f"running {system} ({cfg.jobs} jobs) ...")
            result = runner()
            log(f"  {result.system}: {result.jobs_per_s:,.0f} jobs/s, "
                f"p50 {result.p50_ms:,.1f} ms, p99 {result.p99_ms:,.1f} ms")  # fmt: skip
            results.append(result)
    return report(cfg, results, command=command, machine=machine)


def _runners(
    system: str, cfg: BenchConfig, tuning: IngestTuning | None
) -> list[Callable[[], SystemResult]]:
    if system == "celery":
        return [lambda: run_peer(cfg, celery_peer(cfg))]
    if system == "dramatiq":
        return [partial(run_peer, cfg, dramatiq_peer(cfg, t)) for t in cfg.dramatiq_threads]
    _ray(cfg)
    if system == "ray":
        return [lambda: run_ray_floor(cfg), lambda: run_ray_floor(cfg, batch=cfg.ray_batch)]
    return [lambda: run_ingest_ray(cfg, tuning)]


def _ray(cfg: BenchConfig) -> None:
    settings = Settings(  # no dashboard: its agents' CPU is not the system's
        kafka_bootstrap_servers=cfg.kafka_bootstrap, redis_url=cfg.redis_url, ray_dashboard=False
    )
    connect_ray(settings, RuntimeOptions(namespace="ingest-ray-bench"))


def report(
    cfg: BenchConfig, results: Sequence[SystemResult], *, command: str, machine: dict[str, Any]
) -> dict[str, Any]:
    """The JSON document: figures per system, ratios, targets, machine and versions."""
    by_name = {r.system: r for r in results}
    ratios = _ratios(by_name)
    return {
        "benchmark": "orchestration",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "jobs": cfg.jobs,
        "warmup_jobs": cfg.warmup,
        "machine": machine,
        "versions": versions(cfg.redis_url),
        "systems": {r.system: r.as_dict() for r in results},
        "ratios": ratios,
        "targets": _targets(ratios),
    }


def _ratios(by_name: dict[str, SystemResult]) -> dict[str, float]:
    out: dict[str, float] = {}
    celery = by_name.get("celery")
    for name, result in by_name.items():
        if celery is not None and name != "celery":
            out[f"{name}_over_celery"] = round(result.jobs_per_s / celery.jobs_per_s, 2)
    ours = by_name.get("ingest_ray")
    for floor in ("ray_floor", "ray_floor_batched"):
        if ours is not None and floor in by_name:
            out[f"ingest_ray_over_{floor}"] = round(ours.jobs_per_s / by_name[floor].jobs_per_s, 3)
    return out


def _targets(ratios: dict[str, float]) -> dict[str, Any]:
    over_celery = ratios.get("ingest_ray_over_celery")
    over_floor = ratios.get("ingest_ray_over_ray_floor")
    return {
        "ingest_ray_over_celery_min": TARGET_OVER_CELERY,
        "ingest_ray_over_celery_met": None if over_celery is None
        else over_celery >= TARGET_OVER_CELERY,
        "ingest_ray_over_ray_floor_min": TARGET_OVER_FLOOR,
        "ingest_ray_over_ray_floor_met": None if over_floor is None
        else over_floor >= TARGET_OVER_FLOOR,
    }  # fmt: skip


def server_pids(cfg: BenchConfig) -> dict[str, int]:
    """Pids of the local Redis and Kafka servers (see :func:`benchmarks.cpu.server_pids`)."""
    return cpu.server_pids(cfg.redis_url, cfg.kafka_bootstrap)


def versions(redis_url: str) -> dict[str, str]:
    """Versions of everything measured (a peer that is not installed is left out)."""
    out = {"ray": str(ray.__version__)}
    for name in ("celery", "dramatiq", "kombu", "confluent_kafka"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        version = getattr(module, "__version__", None) or getattr(module, "version", lambda: "")()
        out[name] = str(version[0] if isinstance(version, tuple) else version)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        out["redis_server"] = str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()
    return out


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write the report, pretty-printed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def markdown_table(doc: dict[str, Any]) -> str:
    """The figures as the Markdown table used in ``docs/benchmarks.md``."""
    celery = doc["systems"].get("celery", {}).get("jobs_per_s")
    head = "| system | jobs/s | p50 ms | p99 ms | wall s | CPU ms/job | x Celery |"
    lines = [head, "|---" * 7 + "|"]
    for name, r in doc["systems"].items():
        ratio = f"{r['jobs_per_s'] / celery:.1f}x" if celery else "-"
        cpu = r["notes"].get("cpu_ms_per_job")
        cpu_text = "-" if cpu is None else f"{cpu:.2f}"
        lines.append(f"| {name} | {r['jobs_per_s']:,.0f} | {r['p50_ms']:,.0f} | "
                     f"{r['p99_ms']:,.0f} | {r['wall_s']:,.1f} | {cpu_text} "
                     f"| {ratio} |")  # fmt: skip
    return "\n".join(lines)
