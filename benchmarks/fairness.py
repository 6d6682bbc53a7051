"""Fairness benchmark: a flood of one tenant and a few jobs of another, on a pool slow enough to
keep a backlog; ingest_ray with equal weights and with 1:3, against Celery with one queue.

    ingest-ray bench fairness --json benchmarks/results/fairness.json
    python -m benchmarks.fairness --json benchmarks/results/fairness.json      (the same)

Tenant A submits ``a_jobs`` at once; ``b_delay_s`` later tenant B submits ``b_jobs``. Every job
is one no-op stage that works ``work_s`` on a pool of ``slots`` call slots (ingest_ray: one actor;
Celery: one worker with that many threads). A also runs alone, before and after the two pairs;
the mean of those two throughputs is "alone" (a shared machine's speed drifts).

Reported: B's wait (start - submit) p50/p99 against what B's fair share predicts (B's k-th job
starts ``k / (mu * share_B)`` after it arrives, ``mu`` the pool's starts per second while B
waited, measured in the same run so that a machine that slows down does not count against the
scheduler; the prediction at the rate of A alone is reported too), and A's throughput against A
alone. Also a priority run: a priority-9 job handed to the Dispatcher behind ``a_jobs``
priority-0 jobs, and how many of those started between its arrival and its own start (one
dispatch round = the pool's ``slots`` starts).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.fairness_runs import FairnessConfig, IngestBench, Times, celery_run, wait_until
from ingest_ray.states import JobStatus
from ingest_ray.tenants import TenantLimits

WEIGHTED_B = 3.0
GOAL_WAIT_RATIO = 2.0
GOAL_THROUGHPUT = 0.9


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in 0..100."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def throughput(times: Times) -> float:
    """Jobs per second from the first submit to the last end."""
    span = max(t[2] for t in times.values()) - min(t[0] for t in times.values())
    return len(times) / span if span > 0 else math.inf


def _pair(bench: IngestBench, tag: str, cfg: FairnessConfig, *, with_b: bool) -> list[Times]:
    a, b = f"{tag}-A", f"{tag}-B"
    first = time.time()
    bench.submit(a, cfg.a_jobs)
    if with_b:
        time.sleep(max(0.0, first + cfg.b_delay_s - time.time()))
        bench.submit(b, cfg.b_jobs)
    bench.wait_done(a, cfg.a_jobs)
    if not with_b:
        return [bench.times(a)]
    bench.wait_done(b, cfg.b_jobs)
    return [bench.times(a), bench.times(b)]


def _priority(bench: IngestBench, cfg: FairnessConfig) -> dict[str, Any]:
    tenant = "prio-A"
    bench.submit(tenant, cfg.a_jobs, priority=0)

    def admitted() -> bool:
        return sum(bench.ledger.counts(tenant_id=tenant).values()) >= cfg.a_jobs

    wait_until(admitted, cfg.timeout_s, "priority flood admitted")
    time.sleep(2.0)  # the Dispatcher holds the flood and is busy with it
    held_at = bench.submit_held(tenant, "prio-A-p9", priority=9)
    wait_until(lambda: bench.ledger.get(_job(bench, tenant, "prio-A-p9")).started_at is not None,
               60, "priority-9 start")  # fmt: skip
    times = bench.times(tenant)
    p9_start = times.pop("prio-A-p9")[1]
    between = sum(1 for t in times.values() if held_at < t[1] < p9_start)
    queued = bench.count(tenant, JobStatus.QUEUED)
    return {
        "behind": cfg.a_jobs, "queued_when_it_started": queued,
        "wait_ms": round((p9_start - held_at) * 1000, 1),
        "p0_started_between": between, "round_capacity": cfg.slots,
        "within_one_round": between <= cfg.slots,
    }  # fmt: skip


def _job(bench: IngestBench, tenant: str, doc: str) -> str:
    from ingest_ray.ledger.base import JobFilter  # noqa: PLC0415

    return bench.ledger.list_jobs(JobFilter(tenant_id=tenant, doc_key=doc)).items[0].job_id


def _window_rate(a: Times, b: Times) -> float:
    """The pool's starts per second while B waited (first B submit to last B start)."""
    lo = min(t[0] for t in b.values())
    hi = max(t[1] for t in b.values())
    started = sum(1 for t in (*a.values(), *b.values()) if lo <= t[1] <= hi)
    return started / (hi - lo) if hi > lo else math.inf


def _row(name: str, a: Times, b: Times | None, alone: float, share: float) -> dict[str, Any]:
    row: dict[str, Any] = {"system": name, "a_jobs_per_s": round(throughput(a), 2),
                           "a_vs_alone": round(throughput(a) / alone, 3)}  # fmt: skip
    if b is None:
        return row
    waits = [t[1] - t[0] for t in b.values()]
    n, mu = len(waits), _window_rate(a, b)
    rank50, rank99 = math.ceil(0.5 * n), math.ceil(0.99 * n)
    p99 = percentile(waits, 99)
    row.update({
        "b_share": share, "b_wait_p50_s": round(percentile(waits, 50), 3),
        "b_wait_p99_s": round(p99, 3), "pool_jobs_per_s_while_b_waited": round(mu, 2),
        "b_fair_p50_s": round(rank50 / (mu * share), 3),
        "b_fair_p99_s": round(rank99 / (mu * share), 3),
        "b_p99_vs_fair": round(p99 * mu * share / rank99, 2),
        "b_fair_p99_s_at_alone_rate": round(rank99 / (alone * share), 3),
        "b_p99_vs_fair_at_alone_rate": round(p99 * alone * share / rank99, 2),
    })  # fmt: skip
    return row


def run(
    cfg: FairnessConfig, *, celery: bool = True, log: Callable[[str], None] = print,
    command: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Every run; the JSON document."""
    limits = {"w13-A": TenantLimits(weight=1.0), "w13-B": TenantLimits(weight=WEIGHTED_B)}
    bench = IngestBench(cfg, limits)
    try:
        bench.runtime.start()
        bench.runtime.start_ingress(1, tag="fair")
        bench.submit("warm", 50)
        bench.wait_done("warm", 50)
        log("ingest_ray: A alone")
        (alone,) = _pair(bench, "alone", cfg, with_b=False)
        log("ingest_ray: A and B, equal weights")
        equal = _pair(bench, "eq", cfg, with_b=True)
        log("ingest_ray: A and B, weights 1:3")
        weighted = _pair(bench, "w13", cfg, with_b=True)
        log("ingest_ray: A alone again (the machine's speed drifts: both runs are the baseline)")
        (again,) = _pair(bench, "again", cfg, with_b=False)
        log("ingest_ray: priority run")
        priority = _priority(bench, cfg)
    finally:
        bench.close()
    mu = (throughput(alone) + throughput(again)) / 2
    rows = [
        _row("ingest_ray A alone (before)", alone, None, mu, 0.0),
        _row("ingest_ray A alone (after)", again, None, mu, 0.0),
        _row("ingest_ray equal weights", equal[0], equal[1], mu, 0.5),
        _row("ingest_ray weights 1:3", weighted[0], weighted[1], mu, 0.75),
    ]
    if celery:
        a, b = celery_run(cfg, log)
        rows.append(_row("celery one queue", a, b, throughput(a), 0.5))
    return _document(cfg, rows, priority, command)


def _document(
    cfg: FairnessConfig, rows: list[dict[str, Any]], priority: dict[str, Any], command: str
) -> dict[str, Any]:
    goals = {
        r["system"]: {
            "b_p99_within_2x_of_fair": r["b_p99_vs_fair"] <= GOAL_WAIT_RATIO,
            "a_within_10pct_of_alone": r["a_vs_alone"] >= GOAL_THROUGHPUT,
        }
        for r in rows
        if r["system"].startswith("ingest_ray") and "b_p99_vs_fair" in r
    }
    return {
        "benchmark": "fairness", "command": command,
        "config": {k: v for k, v in vars(cfg).items() if k != "run_id"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
        "runs": rows, "priority": priority, "goals": goals,
    }  # fmt: skip


def markdown_table(doc: dict[str, Any]) -> str:
    """The runs as a Markdown table."""
    lines = [
        "| run | B wait p50 s | B wait p99 s | pool jobs/s while B waited | B fair-share p99 s |"
        " p99 / fair | A jobs/s | A vs alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ("b_wait_p50_s", "b_wait_p99_s", "pool_jobs_per_s_while_b_waited", "b_fair_p99_s",
            "b_p99_vs_fair", "a_jobs_per_s", "a_vs_alone")  # fmt: skip
    for r in doc["runs"]:
        cells = [r.get(k, "-") for k in keys]
        lines.append(f"| {r['system']} | " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Save the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def main() -> None:
    """Forward the arguments to ``ingest-ray bench fairness``."""
    from ingest_ray.commands.bench import bench_app  # noqa: PLC0415

    bench_app(["fairness", *sys.argv[1:]], prog_name="python -m benchmarks.fairness")


if __name__ == "__main__":
    main()
