"""``ingest-ray bench ...``: the side-by-side benchmarks.

The benchmark code lives in the source checkout's ``benchmarks/`` package, not in the engine:
these commands import it lazily from the checkout an editable install (``pip install -e .``)
points at, and say so when there is none.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ingest_ray.commands.common import console, err_console, settings

#: the checkout that holds ``ingest_ray/`` (and ``benchmarks/`` beside it)
CHECKOUT = Path(__file__).resolve().parents[2]

bench_app = typer.Typer(help="Benchmarks (need the `bench` extra for the Celery/Dramatiq peers).")


@bench_app.callback()
def bench() -> None:
    """Benchmarks, measured on demand (tests never assert on speed)."""


def load_benchmarks() -> None:
    """Put the checkout's ``benchmarks`` package on the import path of this process and of every
    process it starts; a clear error when ingest_ray was not installed from a checkout."""
    if (CHECKOUT / "benchmarks" / "__init__.py").is_file() and str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    try:
        import benchmarks  # noqa: PLC0415 - the checkout's package, found at run time
    except ImportError:
        err_console.print(
            "the benchmarks ship with the source checkout, not with the package: run them from "
            "a git checkout installed with `pip install -e .`"
        )
        raise typer.Exit(2) from None
    benchmarks.export_path()


def _command_line(module: str = "benchmarks.orchestration") -> str:
    """How this run was invoked, for the report."""
    program = Path(sys.argv[0]).name
    prefix = "ingest-ray" if program == "ingest-ray" else f"python -m {module}"
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
    rate: Annotated[
        float, typer.Option(help="Open-loop jobs/s offered (latency run); 0 = as fast as possible.")
    ] = 0.0,
    dramatiq_threads: Annotated[
        str, typer.Option(help="Dramatiq threads per process; one run per comma-separated value.")
    ] = "1,8",
    profile_dir: Annotated[
        Path | None, typer.Option(help="py-spy the Dispatcher, relay and ingress here.")
    ] = None,
) -> None:
    """Run the same 4-stage no-op pipeline through each system and compare jobs/s and latency."""
    load_benchmarks()
    from benchmarks.common import BenchConfig  # noqa: PLC0415 - Ray loads on demand
    from benchmarks.orchestration.ingest_system import IngestTuning  # noqa: PLC0415
    from benchmarks.orchestration.run import markdown_table, run, write_json  # noqa: PLC0415
    from benchmarks.orchestration.stages import PoolTuning  # noqa: PLC0415

    cfg = settings()
    bench = BenchConfig(
        jobs=jobs, warmup=warmup, redis_url=cfg.redis_url,
        kafka_bootstrap=cfg.kafka_bootstrap_servers, ray_batch=ray_batch, rate=rate,
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


@bench_app.command("chaos")
def chaos(
    jobs: Annotated[int, typer.Option(min=10, help="Good requests (text and PDFs).")] = 5000,
    duration: Annotated[float, typer.Option(help="Seconds of faults while jobs flow.")] = 600.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="IngestWorker processes.")] = 2,
    fault_every: Annotated[float, typer.Option(help="Mean seconds between faults.")] = 15.0,
    flaky_rate: Annotated[float, typer.Option(help="Share of stage tries that fail.")] = 0.05,
    malformed: Annotated[int, typer.Option(min=0, help="Malformed messages mixed in.")] = 120,
    pdf_share: Annotated[float, typer.Option(help="Share of requests that are PDFs.")] = 0.05,
    pdfs: Annotated[Path | None, typer.Option(help="PDFs to copy (default: the samples).")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the corpus and the faults.")] = 7,
    outage: Annotated[float, typer.Option(help="Seconds Kafka or Redis stays down.")] = 10.0,
    ledger: Annotated[
        str, typer.Option(help="redis, or postgres (a temporary durable one, also killed).")
    ] = "redis",
) -> None:
    """Random faults on every component while jobs flow, then: lost, doubled, unfinished?"""
    import tempfile  # noqa: PLC0415

    load_benchmarks()
    import ray  # noqa: PLC0415 - Ray loads on demand

    from benchmarks.chaos.harness import ChaosConfig, ChaosRun  # noqa: PLC0415
    from ingest_ray.samples import write_samples  # noqa: PLC0415

    if ledger not in ("redis", "postgres"):
        raise typer.BadParameter("--ledger is redis or postgres")

    cfg = ChaosConfig(
        jobs=jobs, duration_s=duration, workers=workers, fault_every_s=fault_every,
        flaky_rate=flaky_rate, malformed=malformed, pdf_share=pdf_share, seed=seed,
        outage_s=outage, ledger=ledger,
    )  # fmt: skip
    ray.init(num_cpus=settings().ray_local_num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="ingest-ray-chaos-") as tmp:
            workdir = Path(tmp)
            sources = sorted(pdfs.glob("*.pdf")) if pdfs else write_samples(workdir / "samples")
            report = ChaosRun(cfg, workdir, log=err_console.print).run(sources)
    finally:
        ray.shutdown()
    report.command = _command_line()
    doc = report.to_json()
    table = Table("figure", "value")
    for name, value in doc["findings"].items():
        table.add_row(name, str(value))
    for name in ("faults_injected", "recovery_s_max", "recovery_s_mean", "settle_s", "wall_s"):
        table.add_row(name, str(doc[name]))
    console.print(table)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2, default=str))
        console.print(f"wrote {json_path}")
    if not report.findings.promises_kept:
        raise typer.Exit(1)


@bench_app.command("embedding")
def embedding(
    cpus: Annotated[int, typer.Option(min=1, help="Cores to use (threads or processes).")] = 2,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of every configuration.")] = 3,
    chunks: Annotated[int, typer.Option(min=0, help="Chunks of the corpus to use (0: all).")] = 0,
    backends: Annotated[str, typer.Option(help="Comma-separated: numpy,onnx.")] = "numpy,onnx",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Embedding chunks/s: numpy vs onnx, one process of N threads vs N one-thread processes."""
    load_benchmarks()
    from benchmarks import embedding as bench  # noqa: PLC0415 - loads the model on demand

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    command = _command_line("benchmarks.embedding")
    doc = bench.run(cpus=cpus, rounds=rounds, limit=chunks, backends=chosen, command=command,
                    log=err_console.print)  # fmt: skip
    console.print(bench.markdown_table(doc), markup=False, highlight=False)
    for name, value in doc["ratios"].items():
        console.print(f"{name}: {value}")
    if json_path is not None:
        bench.write_json(doc, json_path)
        console.print(f"wrote {json_path}")


@bench_app.command("pdf")
def pdf(
    docs: Annotated[int, typer.Option(min=1, help="Documents in the corpus.")] = 55,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    systems: Annotated[
        str, typer.Option(help="Comma-separated: loop,ingest_ray,ray_data.")
    ] = "loop,ingest_ray,ray_data",
    timeout: Annotated[float, typer.Option(help="Seconds ingest_ray may take.")] = 3600.0,
    keep: Annotated[Path | None, typer.Option(help="Keep the corpus and outputs here.")] = None,
) -> None:
    """PDF throughput of two_phase: ingest_ray end to end vs a plain loop vs Ray Data."""
    load_benchmarks()
    from benchmarks.pdf import run as bench  # noqa: PLC0415 - Ray and Ray Data load on demand

    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    cfg = bench.PdfBench(docs=docs, systems=chosen, timeout_s=timeout, keep=keep)
    doc = bench.run(cfg, settings(), command=_command_line("benchmarks.pdf"),
                    log=err_console.print)  # fmt: skip
    console.print(bench.markdown_tables(doc), markup=False, highlight=False)
    for name, value in doc["ratios"].items():
        console.print(f"{name}: {value}")
    if json_path is not None:
        bench.write_json(doc, json_path)
        console.print(f"wrote {json_path}")


@bench_app.command("accel")
def accel(
    docs: Annotated[int, typer.Option(min=1, help="Documents in the backlog.")] = 500,
    slots: Annotated[int, typer.Option(min=1, help="Units of the `accel` resource.")] = 4,
    service_ms: Annotated[float, typer.Option(min=0, help="Slot time per page, ms.")] = 50.0,
    ray_cpus: Annotated[int, typer.Option(min=1, help="Logical CPUs of the local Ray.")] = 16,
    systems: Annotated[str, typer.Option(help="Comma-separated: ingest_ray,ray_data.")] = (
        "ingest_ray,ray_data"
    ),
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Slot utilisation of a simulated accelerator as the mineru pool: ingest_ray vs Ray Data."""
    load_benchmarks()
    from benchmarks.accel import run as bench  # noqa: PLC0415 - Ray loads on demand

    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    cfg = bench.AccelBench(docs=docs, slots=slots, service_s_per_page=service_ms / 1000,
                           ray_cpus=ray_cpus, systems=chosen)  # fmt: skip
    doc = bench.run(cfg, settings(), command=_command_line("benchmarks.accel"),
                    log=err_console.print)  # fmt: skip
    console.print(bench.markdown_table(doc), markup=False, highlight=False)
    console.print(f"ingest_ray_over_ray_data: {doc['ingest_ray_over_ray_data']}")
    if json_path is not None:
        from benchmarks.pdf.run import write_json  # noqa: PLC0415

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
    load_benchmarks()
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
