"""``ingest-ray up``: the whole local service in the foreground, with one status panel.

Prints where everything answers and a ready-to-use API key of the local default tenant, then
shows a live panel (workers, jobs per status) until Ctrl-C or SIGTERM; then everything it
started is drained and stopped (see :mod:`ingest_ray.commands.local_service`).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from ingest_ray.commands.common import console, err_console, settings
from ingest_ray.commands.local_service import LocalService
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.signals import StopSignals
from ingest_ray.workers.base import read_health

REFRESH_S = 2.0


def up(
    host: Annotated[str, typer.Option(help="Address of the API and dashboard.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port [INGEST_RAY_API_PORT, 8000].")] = None,
) -> None:
    """Start the stack, the runtime with Kafka ingress, the MappingWorker, the API with its
    dashboard, and the Ray dashboard; stop all of it on Ctrl-C or SIGTERM."""
    from serve_app.settings import ApiSettings  # noqa: PLC0415 - Ray Serve is heavy

    stop = StopSignals().install()
    cfg = settings()
    service = LocalService(cfg, host=host, port=port or ApiSettings().port,
                           echo=lambda line: err_console.print(f"[dim]{line}"))  # fmt: skip
    try:
        err_console.print("[bold]ingest-ray up[/]: starting (Ctrl-C stops everything)")
        service.start()
        stop.started()
        _watch(service, stop)
    except KeyboardInterrupt:  # stopped while starting, or a second signal cut the drain short
        raise typer.Exit(stop.exit_code()) from None
    finally:
        err_console.print("[bold]ingest-ray up[/]: stopping")
        service.stop()
        err_console.print("[bold]ingest-ray up[/]: stopped; nothing left running")


def addresses(service: LocalService) -> Table:
    """Where everything answers, and the key to use."""
    a, key = service.addresses, service.key
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    if key is not None:
        grid.add_row("dashboard", f"{a.api}#key={key.key}")
    grid.add_row("job API", f"{a.api}  (reference: {a.api}openapi.json)")
    grid.add_row("Ray dashboard", a.ray_dashboard or "off (INGEST_RAY_RAY_DASHBOARD)")
    grid.add_row("metrics", a.metrics or "off")
    started = set(a.started)
    for name, where in (("kafka", a.kafka), ("redis", a.redis)):
        grid.add_row(name, f"{where}  ({'started here' if name in started else 'already running'})")
    if key is not None:
        state = "created now" if key.created else f"saved in {key.path}"
        grid.add_row("API key", f"{key.key}  (tenant {key.tenant}; {state})")
        grid.add_row("try", f"export INGEST_RAY_API_KEY={key.key}")
        grid.add_row("", "ingest-ray submit 10.1101/097196 --watch")
    return grid


def status(service: LocalService) -> Group:
    """Workers' heartbeats and jobs per status, read from Redis."""
    names = {w.name for w in service.workers}
    table = Table("worker", "alive", "lag", "in flight", "last error", box=None)
    for h in read_health(service.settings):
        if h.name in names:
            alive = "[green]yes" if h.alive else "[red]no"
            table.add_row(h.name, alive, str(h.lag), str(h.in_flight), (h.last_error or "")[:60])
    ledger = RedisLedger.from_settings(service.settings)
    try:
        counts = ledger.counts()
    finally:
        ledger.close()
    jobs = "  ".join(f"{s.value} [bold]{n}[/]" for s, n in counts.items())
    return Group(table, f"jobs: {jobs}")


def panel(service: LocalService, *, live: bool) -> Panel:
    """The one panel: addresses and key, then (when live) workers and jobs."""
    parts: list[Table | Group | str] = [addresses(service)]
    if live:
        try:
            parts += ["", status(service)]
        except Exception as exc:  # the panel reports a fault, it never ends the service
            parts += ["", f"[red]status unavailable:[/] {type(exc).__name__}: {exc}"]
    title = f"ingest-ray is up · {time.strftime('%H:%M:%S')} · Ctrl-C stops everything"
    return Panel(Group(*parts), title=title, border_style="green", expand=False)


def _watch(service: LocalService, stop: StopSignals) -> None:
    if not console.is_terminal:  # a log or a pipe: print the addresses once
        console.print(panel(service, live=False), soft_wrap=True)
        stop.wait()
        return
    with Live(panel(service, live=True), console=console, auto_refresh=False) as live:
        while not stop.wait(REFRESH_S):
            live.update(panel(service, live=True), refresh=True)
