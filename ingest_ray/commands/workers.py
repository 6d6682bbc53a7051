"""``ingest-ray worker start|stop`` and ``ingest-ray status``."""

from __future__ import annotations

import os
import signal
import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from ingest_ray import local_ray
from ingest_ray.commands.common import console, settings
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.signals import StopSignals
from ingest_ray.stack.process import ManagedProcess
from ingest_ray.workers.base import WORKER_MARKER, Worker, read_health
from ingest_ray.workers.ingest import IngestWorker
from ingest_ray.workers.mapping import MappingWorker

worker_app = typer.Typer(help="Run and stop workers.")


class Kind(StrEnum):
    """Worker kinds."""

    INGEST = "ingest"
    MAPPING = "mapping"


@worker_app.command("start")
def worker_start(
    kind: Annotated[Kind, typer.Argument(help="ingest: requests -> pipelines; mapping: entities.")],
    name: Annotated[str | None, typer.Option(help="Worker name (default: kind-host-pid).")] = None,
    consumers: Annotated[int, typer.Option(min=1, help="Kafka ingress actors (ingest).")] = 1,
    grace: Annotated[float | None, typer.Option(help="Drain grace period, seconds.")] = None,
) -> None:
    """Run a worker in the foreground until SIGTERM/SIGINT or `ingest-ray worker stop`.

    The signal drains the worker, then Ray is shut down and every Ray process this command
    started is ended, so nothing is left running."""
    stop = StopSignals().install()
    cfg = settings()
    catalog = builtin_catalog(cfg)
    worker: Worker
    try:
        if kind is Kind.INGEST:
            worker = IngestWorker(cfg, catalog, consumers=consumers, name=name)
        else:
            worker = MappingWorker(cfg, catalog, name=name)
        console.print(f"[green]{worker.name}[/] starting ({kind.value}); stop with SIGTERM or "
                      f"`ingest-ray worker stop {worker.name}`")  # fmt: skip
        worker.start()
        stop.started()
        console.print(f"[green]{worker.name}[/] running")
        stop.wait()
        received = stop.received.name if stop.received else "stop"
        console.print(f"[green]{worker.name}[/] draining ({received})")
        report = worker.stop(grace_s=grace)
        console.print(f"[green]{worker.name}[/] stopped: {report}")
    except KeyboardInterrupt:  # stopped while starting, or a second signal cut the drain short
        raise typer.Exit(stop.exit_code()) from None
    finally:
        local_ray.stop()


@worker_app.command("stop")
def worker_stop(
    name: Annotated[
        str | None, typer.Argument(help="Worker name; all local workers if omitted.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the drain.")] = 60.0,
) -> None:
    """Ask workers on this machine to drain and stop (SIGTERM to their recorded pid)."""
    run_dir = settings().state_dir / "workers"
    names = [name] if name else sorted(p.stem for p in run_dir.glob("*.pid"))
    if not names:
        console.print("no workers running on this machine")
    for worker in names:
        proc = ManagedProcess(worker, run_dir, run_dir / f"{worker}.log")
        rec = proc.record()
        if rec is None or WORKER_MARKER not in rec.marker:
            console.print(f"{worker}: not running")
            proc.pid_path.unlink(missing_ok=True)
            continue
        os.kill(rec.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while proc.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        console.print(f"{worker}: {'still draining' if proc.alive() else 'stopped'}")


def status() -> None:
    """Workers (alive, lag, in flight, last error) and jobs per status."""
    cfg = settings()
    table = Table("worker", "kind", "alive", "lag", "in flight", "last error", "details")
    for h in read_health(cfg):
        alive = "[green]yes" if h.alive else "[red]no"
        details = ", ".join(f"{k}={v}" for k, v in h.details.items())
        table.add_row(
            h.name, h.kind, alive, str(h.lag), str(h.in_flight), h.last_error or "", details
        )
    console.print(table)
    ledger = RedisLedger.from_settings(cfg)
    try:
        counts = ledger.counts()
    finally:
        ledger.close()
    console.print("jobs: " + ", ".join(f"{s.value}={n}" for s, n in counts.items()))
