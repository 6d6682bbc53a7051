"""``ingest-ray bench pdf``: one corpus, three systems, one after the other in one invocation.

Order: the plain loop first (before Ray starts, so Ray's idle daemons do not share its cores),
then ingest_ray and Ray Data on one local Ray. Each system gets its own blob store, LanceDB,
topics and Redis prefix. Every figure comes from the same instruments: wall time, the CPU of
every process involved (this process and all it started: Ray's daemons and workers, parser
children; plus the shared Redis and Kafka servers) and the stage-code CPU recorded inside the
stage wrappers; orchestration overhead is the CPU outside stage code as a share of all CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import machine_info
from benchmarks.cpu import CpuMeter, server_pids
from benchmarks.pdf.corpus import Corpus, build_corpus
from benchmarks.pdf.ingest import run_ingest_ray
from benchmarks.pdf.jobs import Job, system_settings
from benchmarks.pdf.loop import run_plain_loop
from benchmarks.pdf.raydata import run_ray_data
from benchmarks.pdf.timing import read_timings
from ingest_ray.config import Settings
from ingest_ray.pipelines.builtin import builtin_pools
from ingest_ray.pipelines.catalog import PoolSpec

SYSTEMS: tuple[str, ...] = ("loop", "ingest_ray", "ray_data")
#: the issue's goals on 2 cores
TARGETS = {"ingest_ray_over_loop_min": 1.8, "ingest_ray_over_ray_data_min": 1.0,
           "overhead_max": 0.03}  # fmt: skip

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PdfBench:
    """One invocation."""

    docs: int = 55
    systems: tuple[str, ...] = SYSTEMS
    timeout_s: float = 3600.0
    keep: Path | None = None
    pools: dict[str, PoolSpec] = field(default_factory=dict)


def run(cfg: PdfBench, base: Settings, *, command: str = "", log: Log = print) -> dict[str, Any]:
    """Run the chosen systems over one corpus; answers the JSON report."""
    unknown = set(cfg.systems) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"unknown system(s) {sorted(unknown)}; choose from {SYSTEMS}")
    machine = machine_info()
    work = cfg.keep or Path(tempfile.mkdtemp(prefix="bench-pdf-"))
    pools = cfg.pools or {p.name: p for p in builtin_pools(base)}
    servers = server_pids(base.redis_url, base.kafka_bootstrap_servers)
    try:
        corpus = build_corpus(work / "corpus", cfg.docs)
        log(f"corpus: {len(corpus.paths)} docs, {corpus.total_pages} pages")
        results: dict[str, dict[str, Any]] = {}
        for system in (s for s in SYSTEMS if s in cfg.systems):
            settings = system_settings(base, work, system)
            load = round(os.getloadavg()[0], 2)
            log(f"running {system} (load average {load}) ...")
            result = _run_one(system, corpus, settings, pools, servers, cfg.timeout_s)
            result["load_avg_1m_at_start"] = load
            results[system] = result
            log(f"  {system}: {result['pages_per_s']:.2f} pages/s, {result['docs_per_s']:.3f} "
                f"docs/s, overhead {100 * result['overhead']:.1f}%")  # fmt: skip
    finally:
        _shutdown_ray()
        if cfg.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    machine["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return report(corpus, results, pools, machine=machine, command=command)


def _run_one(
    system: str, corpus: Corpus, settings: Settings, pools: dict[str, PoolSpec],
    servers: dict[str, int], timeout_s: float,
) -> dict[str, Any]:  # fmt: skip
    if system == "ingest_ray":
        _ray(settings)
        run = run_ingest_ray(corpus, settings, servers, timeout_s=timeout_s)
        time.sleep(5)  # let the stopped actors exit before the next system's CPU reading
        return figures(system, corpus, settings, wall_s=run.wall_s, cpu=run.cpu,
                       statuses=run.statuses, pages=run.pages, errors=run.errors,
                       extra={"jobs_window_s": round(run.jobs_window_s, 2)})  # fmt: skip
    jobs = [Job.for_pdf(p) for p in corpus.paths]
    meter = CpuMeter(servers, children=True)
    if system == "ray_data":
        _ray(settings)
    meter.start()
    started = time.time()
    if system == "loop":
        run_plain_loop(jobs, settings, pools)
    else:
        jobs = run_ray_data(jobs, settings, pools)
    wall, cpu = time.time() - started, meter.stop()
    statuses: dict[str, int] = {}
    for job in jobs:
        statuses[job.status] = statuses.get(job.status, 0) + 1
    errors = [f"{j.doc_key}: {j.error}" for j in jobs if j.error][:5]
    return figures(system, corpus, settings, wall_s=wall, cpu=cpu, statuses=statuses,
                   pages=sum(j.pages for j in jobs), errors=errors)  # fmt: skip


def _ray(settings: Settings) -> None:
    from ingest_ray.runtime.options import RuntimeOptions  # noqa: PLC0415
    from ingest_ray.runtime.runtime import connect_ray  # noqa: PLC0415

    connect_ray(settings, RuntimeOptions(namespace="ingest-ray-bench"))


def _shutdown_ray() -> None:
    import ray  # noqa: PLC0415

    if ray.is_initialized():
        ray.shutdown()


def figures(
    system: str, corpus: Corpus, settings: Settings, *, wall_s: float, cpu: dict[str, float],
    statuses: dict[str, int], pages: int, errors: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One system's figures (see the module docstring)."""
    stages = read_timings(Path(settings.sections["bench"]["timing_dir"]))
    cores = os.cpu_count() or 1
    total = float(cpu["total"])
    shared = sum(v for k, v in cpu.items() if "(shared)" in k)
    in_stages = sum(float(s["cpu_s"]) for s in stages.values())
    docs = len(corpus.paths)
    return {
        "docs": docs, "pages": corpus.total_pages, "pages_parsed": pages, "statuses": statuses,
        "wall_s": round(wall_s, 2), "docs_per_s": round(docs / wall_s, 4),
        "pages_per_s": round(corpus.total_pages / wall_s, 3),
        "cpu_s": round(total, 2), "busy_cores": round(total / wall_s, 3),
        "cpu_utilisation": round(total / wall_s / cores, 3), "cores": cores,
        "stage_cpu_s": round(in_stages, 2),
        "overhead": round(max(0.0, total - in_stages) / total, 4) if total else 0.0,
        "overhead_without_shared_servers": round(
            max(0.0, total - shared - in_stages) / (total - shared), 4) if total > shared else 0.0,
        "stages": stages, "cpu_by_process": cpu, "errors": list(errors), **(extra or {}),
    }  # fmt: skip


def report(
    corpus: Corpus, results: dict[str, dict[str, Any]], pools: dict[str, PoolSpec], *,
    machine: dict[str, Any], command: str,
) -> dict[str, Any]:  # fmt: skip
    """The JSON document."""
    import ray  # noqa: PLC0415

    rate = {name: r["pages_per_s"] for name, r in results.items()}
    ratios: dict[str, float] = {}
    for other in ("loop", "ray_data"):
        if "ingest_ray" in rate and other in rate:
            ratios[f"ingest_ray_over_{other}"] = round(rate["ingest_ray"] / rate[other], 3)
    if "ray_data" in rate and "loop" in rate:
        ratios["ray_data_over_loop"] = round(rate["ray_data"] / rate["loop"], 3)
    ours = results.get("ingest_ray", {})
    met = {
        "ingest_ray_over_loop": _at_least(ratios.get("ingest_ray_over_loop"), 1.8),
        "ingest_ray_over_ray_data": _at_least(ratios.get("ingest_ray_over_ray_data"), 1.0),
        "overhead": None if not ours else ours["overhead"] < TARGETS["overhead_max"],
    }
    return {
        "benchmark": "pdf", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command, "machine": machine, "ray": str(ray.__version__),
        "corpus": corpus.as_dict(), "pools": {n: _pool(p) for n, p in pools.items()},
        "systems": results, "ratios": ratios, "targets": TARGETS, "targets_met": met,
    }  # fmt: skip


def _at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def _pool(pool: PoolSpec) -> dict[str, Any]:
    return {"num_cpus": pool.resources.num_cpus, "max_size": pool.max_size,
            "batch_size": pool.batch_size, "max_in_flight": pool.max_in_flight,
            "actor_concurrency": pool.actor_concurrency}  # fmt: skip


def markdown_tables(doc: dict[str, Any]) -> str:
    """The summary and the per-stage CPU, as the tables of ``docs/benchmarks.md``."""
    head = (
        "| system | docs/s | pages/s | wall s | CPU s | busy cores | CPU utilisation "
        "| stage CPU s | overhead | overhead w/o Redis+Kafka |"
    )
    lines = [head, "|---" * 10 + "|"]
    for name, r in doc["systems"].items():
        lines.append(f"| {name} | {r['docs_per_s']:.3f} | {r['pages_per_s']:.2f} | "
                     f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['busy_cores']:.2f} | "
                     f"{100 * r['cpu_utilisation']:.0f}% | {r['stage_cpu_s']:.1f} | "
                     f"{100 * r['overhead']:.1f}% | "
                     f"{100 * r['overhead_without_shared_servers']:.1f}% |")  # fmt: skip
    systems = list(doc["systems"])
    stages = [s for s in doc["pools"] if any(s in r["stages"] for r in doc["systems"].values())]
    lines += ["", "| stage (CPU s / busy wall s) | " + " | ".join(systems) + " |",
              "|---" * (len(systems) + 1) + "|"]  # fmt: skip
    for stage in stages:
        cells = []
        for name in systems:
            s = doc["systems"][name]["stages"].get(stage)
            cells.append("-" if s is None else f"{s['cpu_s']:.1f} / {s['busy_wall_s']:.1f}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write the report, pretty-printed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
