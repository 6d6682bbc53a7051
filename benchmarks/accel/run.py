"""``ingest-ray bench accel``: slot utilisation of a simulated accelerator pool, ingest_ray vs
Ray Data, one after the other on one local Ray started with ``{"accel": slots}``.

Both run ``two_phase`` over the same corpus with :class:`~benchmarks.accel.stage.SimAccelStage`
as ``mineru``: ingest_ray through ``run_local`` with ``mineru_resource="accel"`` and
``mineru_pool_max=slots`` (so its ``mineru`` pool asks for one unit per actor, up to ``slots``
actors), Ray Data with the same stages as ``map_batches`` on actor pools of the same shapes. The
local Ray gets ``ray_cpus`` logical CPUs, enough that no pool waits for a logical CPU (the two
physical cores are shared either way).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.accel.stage import FACTORY, busy_intervals, utilisation
from benchmarks.common import machine_info
from benchmarks.cpu import CpuMeter, server_pids
from benchmarks.pdf.corpus import build_corpus
from benchmarks.pdf.ingest import run_ingest_ray
from benchmarks.pdf.jobs import Job, system_settings
from benchmarks.pdf.raydata import run_ray_data
from benchmarks.pdf.timing import read_timings
from ingest_ray.config import Settings
from ingest_ray.pipelines.builtin import builtin_pools

SYSTEMS: tuple[str, ...] = ("ingest_ray", "ray_data")
TARGET_UTILISATION = 0.95


@dataclass(frozen=True, slots=True)
class AccelBench:
    """One invocation."""

    docs: int = 500
    slots: int = 4
    service_s_per_page: float = 0.05
    ray_cpus: int = 16
    systems: tuple[str, ...] = SYSTEMS
    timeout_s: float = 3600.0


def accel_settings(cfg: AccelBench, base: Settings) -> Settings:
    """``base`` with the accelerator pool and the simulated stage in place of MinerU."""
    bench = {**base.sections.get("bench", {}), "service_s_per_page": cfg.service_s_per_page,
             "factories": {"mineru": FACTORY}}  # fmt: skip
    return base.model_copy(update={
        "mineru_resource": "accel", "mineru_pool_max": cfg.slots,
        "ray_local_num_cpus": cfg.ray_cpus, "sections": {**base.sections, "bench": bench},
    })  # fmt: skip


def run(cfg: AccelBench, base: Settings, *, command: str = "", log: Any = print) -> dict[str, Any]:
    """Run the chosen systems; answers the JSON report."""
    import ray  # noqa: PLC0415

    machine = machine_info()
    settings = accel_settings(cfg, base)
    pools = {p.name: p for p in builtin_pools(settings)}
    servers = server_pids(base.redis_url, base.kafka_bootstrap_servers)
    work = Path(tempfile.mkdtemp(prefix="bench-accel-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        corpus = build_corpus(work / "corpus", cfg.docs)
        log(f"corpus: {len(corpus.paths)} docs, {corpus.total_pages} pages")
        ray.init(
            num_cpus=cfg.ray_cpus,
            resources={"accel": float(cfg.slots)},
            namespace="ingest-ray-bench",
            include_dashboard=False,
            log_to_driver=False,
        )
        for system in (s for s in SYSTEMS if s in cfg.systems):
            own = system_settings(settings, work, system)
            load = round(os.getloadavg()[0], 2)
            log(f"running {system} (load average {load}) ...")
            started = time.time()
            if system == "ingest_ray":
                run_ = run_ingest_ray(corpus, own, servers, timeout_s=cfg.timeout_s)
                wall, cpu, statuses = run_.wall_s, run_.cpu, run_.statuses
                time.sleep(5)  # let the stopped actors exit before the next reading
            else:
                meter = CpuMeter(servers, children=True)
                meter.start()
                jobs = run_ray_data([Job.for_pdf(p) for p in corpus.paths], own, pools)
                wall, cpu = time.time() - started, meter.stop()
                statuses = {}
                for job in jobs:
                    statuses[job.status] = statuses.get(job.status, 0) + 1
            timing_dir = Path(own.sections["bench"]["timing_dir"])
            slots = utilisation(busy_intervals(timing_dir), cfg.slots)
            results[system] = _figures(slots, started, wall, cpu, statuses, load)
            results[system]["stages"] = read_timings(timing_dir)
            log(f"  {system}: slot utilisation {100 * slots['slot_utilisation']:.1f}%")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    machine["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return _report(cfg, corpus.as_dict(), results, machine, command, pools["mineru"])


def _figures(
    slots: dict[str, Any], started: float, wall: float, cpu: dict[str, float],
    statuses: dict[str, int], load: float,
) -> dict[str, Any]:  # fmt: skip
    first = slots.pop("first_call_at", None)
    last = slots.pop("last_call_end_at", None)
    return {
        **slots, "statuses": statuses, "wall_s": round(wall, 2),
        "first_call_after_s": None if first is None else round(first - started, 2),
        "last_call_end_after_s": None if last is None else round(last - started, 2),
        "cpu_s": cpu.get("total"), "busy_cores": round(float(cpu.get("total", 0)) / wall, 3),
        "cpu_by_process": cpu, "load_avg_1m_at_start": load,
    }  # fmt: skip


def _report(
    cfg: AccelBench, corpus: dict[str, Any], results: dict[str, dict[str, Any]],
    machine: dict[str, Any], command: str, pool: Any,
) -> dict[str, Any]:  # fmt: skip
    ours = results.get("ingest_ray", {}).get("slot_utilisation")
    theirs = results.get("ray_data", {}).get("slot_utilisation")
    return {
        "benchmark": "accel", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command, "machine": machine, "corpus": corpus,
        "setup": {"slots": cfg.slots, "service_s_per_page": cfg.service_s_per_page,
                  "ray_cpus": cfg.ray_cpus, "mineru_pool": {
                      "max_size": pool.max_size, "max_in_flight": pool.max_in_flight,
                      "actor_concurrency": pool.actor_concurrency,
                      "resources": {"CPU": pool.resources.num_cpus, **pool.resources.custom}}},
        "systems": results,
        "target_utilisation": TARGET_UTILISATION,
        "target_met": None if ours is None else ours >= TARGET_UTILISATION,
        "ingest_ray_over_ray_data": None if not (ours and theirs) else round(ours / theirs, 3),
    }  # fmt: skip


def markdown_table(doc: dict[str, Any]) -> str:
    """The figures as the table of ``docs/benchmarks.md``."""
    lines = ["| system | slot utilisation | busy slot-s | window s | calls | slot actors "
             "| first call after s | wall s | completed |", "|---" * 9 + "|"]  # fmt: skip
    for name, r in doc["systems"].items():
        lines.append(f"| {name} | {100 * r['slot_utilisation']:.1f}% | {r.get('busy_slot_s', 0)} "
                     f"| {r.get('window_s', 0)} | {r['calls']} | {r.get('slot_processes', 0)} | "
                     f"{r['first_call_after_s']} | {r['wall_s']} | "
                     f"{r['statuses'].get('completed', 0)} |")  # fmt: skip
    return "\n".join(lines)
