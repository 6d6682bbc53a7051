"""``ingest-ray worker start|stop`` and ``ingest-ray status``."""

from __future__ import annotations

import os
import signal
import time
from enum import StrEnum
from typing import Annotated

import ray
import typer
from rich.table import Table

from ingest_ray import local_ray
from ingest_ray.commands.common import console, settings
from ingest_ray.commands.tenants import print_tenants
from ingest_ray.errors import ServiceUnavailableError
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import stop_control_plane
from ingest_ray.signals import StopSignals
from ingest_ray.stack.process import ManagedProcess
from ingest_ray.workers.base import WORKER_MARKER, Worker, read_health, read_local_health
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


def status(
    tenants: Annotated[
        bool, typer.Option("--tenants", help="Also each tenant's share, caps, quota and waits.")
    ] = False,
) -> None:
    """Workers (alive, lag, in flight, problems, last error) and jobs per status. During an
    outage it says what is unreachable and since when, from the workers' local health files."""
    cfg = settings()
    try:
        healths = read_health(cfg)
    except ServiceUnavailableError as exc:
        console.print(f"[red]{exc}[/]; showing this machine's workers from their health files")
        healths = read_local_health(cfg)
    table = Table(
        "worker", "kind", "alive", "lag", "in flight", "problems", "last error", "details"
    )
    for h in healths:
        alive = "[green]yes" if h.alive else "[red]no"
        problems = "[yellow]" + "; ".join(h.problems) if h.problems else ""
        details = ", ".join(
            f"{k}={v}" for k, v in h.details.items() if k != "pools" and not k.startswith("pool_")
        )
        pools = h.details.get("pools", {})
        if pools:
            details += "\npools: " + "; ".join(
                f"{name} {f['size']}/{f['target']} ({f['backlog']} ready, "
                f"{round(100 * f['in_flight'] / f['capacity']) if f['capacity'] else 0}% busy)"
                for name, f in sorted(pools.items())
            )
        table.add_row(
            h.name, h.kind, alive, str(h.lag), str(h.in_flight), problems, h.last_error or "",
            details,
        )  # fmt: skip
    console.print(table)
    ledger = open_ledger(cfg)
    try:
        counts = ledger.counts()
        console.print("jobs: " + ", ".join(f"{s.value}={n}" for s, n in counts.items()))
    except Exception as exc:  # the ledger is away: say so, do not crash
        console.print(
            f"[red]job counts unavailable: ledger unreachable ({type(exc).__name__}: {exc})"
        )
    finally:
        ledger.close()
    if tenants:
        print_tenants()


runtime_app = typer.Typer(help="The shared control plane (Dispatcher, relay).")


@runtime_app.command("stop")
def runtime_stop(
    name: Annotated[
        str | None, typer.Option(help="Runtime name (the settings' by default).")
    ] = None,
    grace: Annotated[float, typer.Option(help="Seconds to let stage calls finish.")] = 10.0,
) -> None:
    """Stop a runtime's control plane even while workers use it (they recreate it unless
    stopped too; stop the workers first for a clean shutdown)."""
    cfg = settings()
    options = RuntimeOptions(name=name or cfg.runtime_name)
    ray.init(address=cfg.ray_address or "auto", namespace=options.namespace, log_to_driver=False)
    try:
        stop_control_plane(cfg, options, grace_s=grace)
    finally:
        ray.shutdown()
    console.print(f"runtime {options.name}: stopped")
