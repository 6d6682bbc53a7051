"""``ingest-ray bench orchestration``: the side-by-side orchestration benchmark."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ingest_ray.commands.common import console, err_console, settings

bench_app = typer.Typer(help="Benchmarks (need the `bench` extra for the Celery/Dramatiq peers).")


@bench_app.callback()
def bench() -> None:
    """Benchmarks, measured on demand (tests never assert on speed)."""


def _command_line() -> str:
    """How this run was invoked, for the report."""
    program = Path(sys.argv[0]).name
    prefix = "ingest-ray" if program == "ingest-ray" else "python -m benchmarks.orchestration"
    return f"{prefix} {shlex.join(sys.argv[1:])}"


@bench_app.command("orchestration")
def orchestration(
    jobs: Annotated[int, typer.Option(min=1, help="Jobs per system.")] = 20000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    systems: Annotated[
        str, typer.Option(help="Comma-separated: ingest_ray,celery,dramatiq,ray.")
    ] = "ingest_ray,celery,dramatiq,ray",
    warmup: Annotated[int, typer.Option(min=1, help="Warm-up jobs per system.")] = 200,
    batch_size: Annotated[int, typer.Option(help="ingest_ray: jobs per stage call.")] = 256,
    max_in_flight: Annotated[int, typer.Option(help="ingest_ray: calls in flight per pool.")] = 4,
    ingress_batch: Annotated[int, typer.Option(help="ingest_ray: messages per poll.")] = 500,
    ray_batch: Annotated[int, typer.Option(help="Jobs per call of the batched Ray floor.")] = 256,
    dramatiq_threads: Annotated[
        str, typer.Option(help="Dramatiq threads per process; one run per comma-separated value.")
    ] = "1,8",
    profile_dir: Annotated[
        Path | None, typer.Option(help="py-spy the Dispatcher, LedgerCache and ingress here.")
    ] = None,
) -> None:
    """Run the same 4-stage no-op pipeline through each system and compare jobs/s and latency."""
    from ingest_ray.bench.common import BenchConfig  # noqa: PLC0415 - Ray loads on demand
    from ingest_ray.bench.ingest_system import IngestTuning  # noqa: PLC0415
    from ingest_ray.bench.orchestration import markdown_table, run, write_json  # noqa: PLC0415
    from ingest_ray.bench.stages import PoolTuning  # noqa: PLC0415

    cfg = settings()
    bench = BenchConfig(
        jobs=jobs, warmup=warmup, redis_url=cfg.redis_url,
        kafka_bootstrap=cfg.kafka_bootstrap_servers, ray_batch=ray_batch,
        dramatiq_threads=tuple(int(t) for t in dramatiq_threads.split(",") if t.strip()),
    )  # fmt: skip
    tuning = IngestTuning(
        pools=PoolTuning(batch_size=batch_size, max_in_flight=max_in_flight),
        ingress_batch=ingress_batch, profile_dir=profile_dir,
    )  # fmt: skip
    chosen = [s.strip() for s in systems.split(",") if s.strip()]
    doc = run(bench, chosen, tuning=tuning, command=_command_line(), log=err_console.print)
    table = Table("system", "jobs/s", "p50 ms", "p99 ms", "wall s")
    for name, r in doc["systems"].items():
        table.add_row(name, f"{r['jobs_per_s']:,.0f}", f"{r['p50_ms']:,.1f}",
                      f"{r['p99_ms']:,.1f}", f"{r['wall_s']:,.1f}")  # fmt: skip
    console.print(table)
    for name, value in doc["ratios"].items():
        console.print(f"{name}: {value}")
    console.print(markdown_table(doc), markup=False, highlight=False)
    if json_path is not None:
        write_json(doc, json_path)
        console.print(f"wrote {json_path}")


@bench_app.command("fairness")
def fairness(
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    a_jobs: Annotated[int, typer.Option(min=1, help="Tenant A's flood.")] = 5000,
    b_jobs: Annotated[int, typer.Option(min=1, help="Tenant B's jobs.")] = 100,
    b_delay: Annotated[float, typer.Option(help="Seconds between A's and B's submits.")] = 10.0,
    work_s: Annotated[float, typer.Option(help="Seconds each job works.")] = 0.2,
    slots: Annotated[int, typer.Option(min=1, help="Call slots of the pool.")] = 8,
    celery: Annotated[bool, typer.Option(help="Also run Celery with one queue.")] = True,
) -> None:
    """Tenant A floods, tenant B arrives later: B's waits and A's throughput, fair or FIFO."""
    root = Path(__file__).resolve().parents[2]  # benchmarks/ lives beside the package
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.fairness import markdown_table, run, write_json  # noqa: PLC0415
    from benchmarks.fairness_runs import FairnessConfig  # noqa: PLC0415

    cfg = settings()
    config = FairnessConfig(
        a_jobs=a_jobs, b_jobs=b_jobs, b_delay_s=b_delay, work_s=work_s, slots=slots,
        redis_url=cfg.redis_url, kafka_bootstrap=cfg.kafka_bootstrap_servers,
    )  # fmt: skip
    program = Path(sys.argv[0]).name
    prefix = "ingest-ray" if program == "ingest-ray" else "python -m benchmarks.fairness"
    doc = run(config, celery=celery, log=err_console.print,
              command=f"{prefix} {shlex.join(sys.argv[1:])}")  # fmt: skip
    console.print(markdown_table(doc), markup=False, highlight=False)
    console.print(f"priority: {doc['priority']}")
    console.print(f"goals: {doc['goals']}")
    if json_path is not None:
        write_json(doc, json_path)
        console.print(f"wrote {json_path}")
