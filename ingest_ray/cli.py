"""``ingest-ray``: the command line (typer + rich)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from typing import Annotated, Any

import redis
import typer
from rich.logging import RichHandler
from rich.table import Table

from ingest_ray.commands.api import register as register_api_commands
from ingest_ray.commands.apikey import apikey_app
from ingest_ray.commands.bench import bench_app
from ingest_ray.commands.common import console, err_console
from ingest_ray.commands.dlq import dlq_app
from ingest_ray.commands.ingest import demo, ingest, search
from ingest_ray.commands.ledger import ledger_migrate, ledger_prune
from ingest_ray.commands.tenants import tenant_app
from ingest_ray.commands.up import up
from ingest_ray.commands.workers import runtime_app, status, worker_app
from ingest_ray.config import Settings, get_settings
from ingest_ray.errors import IngestError
from ingest_ray.events import IngestRequest
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.base import JobFilter, Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.local_run import guess_source
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.render import jobs_table
from ingest_ray.runtime.ingress import run_admission
from ingest_ray.stack.launcher import LocalStack
from ingest_ray.states import JobStatus

app = typer.Typer(help="ingest_ray: scholarly literature ingestion on Kafka, Redis and Ray.")
stack_app = typer.Typer(help="The local Kafka + Redis stack (no Docker).")
topics_app = typer.Typer(help="Kafka topics.")
ledger_app = typer.Typer(help="Read the job ledger (Redis or PostgreSQL); migrate and prune it.")
app.add_typer(stack_app, name="stack")
app.add_typer(topics_app, name="topics")
app.add_typer(ledger_app, name="ledger")
ledger_app.command("migrate")(ledger_migrate)
ledger_app.command("prune")(ledger_prune)
app.add_typer(worker_app, name="worker")
app.add_typer(runtime_app, name="runtime")
app.add_typer(dlq_app, name="dlq")
app.add_typer(apikey_app, name="apikey")
app.add_typer(tenant_app, name="tenant")
app.add_typer(bench_app, name="bench")
register_api_commands(app)
app.command()(ingest)
app.command()(search)
app.command()(demo)
app.command()(status)
app.command()(up)


def _settings() -> Settings:
    return get_settings()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


# --- stack ----------------------------------------------------------------------------------


@stack_app.command("up")
def stack_up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for both services.")] = 120.0,
) -> None:
    """Start Kafka (KRaft) and Redis on loopback; reuse what already runs. Idempotent."""
    stack = LocalStack.from_settings(_settings())
    statuses = stack.up(timeout=timeout, echo=lambda line: err_console.print(f"[dim]{line}"))
    for s in statuses:
        console.print(f"[green]{s.name}[/] ready at [bold]{s.address}[/] (pid {s.pid})")


@stack_app.command("fetch")
def stack_fetch() -> None:
    """Resolve the pinned Kafka jars from Maven Central into the cache (done by `up` too)."""
    stack = LocalStack.from_settings(_settings())
    console.print(f"Kafka {stack.kafka.version} jars in {stack.kafka.ensure_jars()}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services `stack up` started (by pid file, never by name)."""
    LocalStack.from_settings(_settings()).down(echo=console.print)


@stack_app.command("status")
def stack_status() -> None:
    """Show pid, address and readiness of each local service."""
    table = Table("service", "address", "pid", "ready", "log")
    for s in LocalStack.from_settings(_settings()).status():
        ready = "[green]yes" if s.ready else "[red]no"
        table.add_row(s.name, s.address, str(s.pid or "-"), ready, str(s.log))
    console.print(table)


# --- topics and health ------------------------------------------------------------------------


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int | None, typer.Option(help="Partitions per topic.")] = None,
    replication: Annotated[int | None, typer.Option(help="Replication factor.")] = None,
) -> None:
    """Create the project's topics; existing ones are left alone."""
    settings = _settings()
    kafka = KafkaClient(
        settings.kafka_bootstrap_servers,
        partitions=partitions or settings.topic_partitions,
        replication=replication or settings.topic_replication,
    )
    for name, outcome in kafka.ensure_topics().items():
        console.print(f"{name}: {outcome}")


@app.command()
def health(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check Kafka (brokers, topics), Redis and (when it is PostgreSQL) the ledger; exit 1 when
    any is unhealthy."""
    settings = _settings()
    kafka = KafkaClient.from_settings(settings).health()
    report: dict[str, dict[str, Any]] = {
        "kafka": {"ok": kafka.ok, "brokers": kafka.brokers, "missing": kafka.topics_missing,
                  "error": kafka.error, "elapsed_s": round(kafka.elapsed_s, 3)},
        "redis": _ping(lambda: redis.Redis.from_url(settings.redis_url, socket_timeout=5)),
    }  # fmt: skip
    if settings.ledger_backend != "redis":
        report["ledger"] = _ping(lambda: open_ledger(settings))
    if as_json:
        console.print_json(json.dumps(report))
    else:
        for name, part in report.items():
            mark = "[green]ok" if part["ok"] else "[red]unhealthy"
            console.print(f"{name}: {mark}[/] {part}")
    if not all(part["ok"] for part in report.values()):
        raise typer.Exit(1)


def _ping(build: Callable[[], Ledger | redis.Redis]) -> dict[str, Any]:
    client = build()
    try:
        return {"ok": bool(client.ping()), "error": None}
    except Exception as exc:
        return {"ok": False, "error": str(exc)}
    finally:
        client.close()


# --- requests and admission -------------------------------------------------------------------


@app.command()
def enqueue(
    sources: Annotated[list[str], typer.Argument(help="DOIs, OpenAlex ids, PDF URLs or paths.")],
    tenant: Annotated[str, typer.Option(help="Tenant id.")] = "default",
    priority: Annotated[int, typer.Option(min=0, max=9, help="0 (low) .. 9 (high).")] = 5,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline name.")] = None,
) -> None:
    """Publish ingest requests to `ingest.requests.v1`."""
    settings = _settings()
    with KafkaClient.from_settings(settings).producer() as producer:
        for value in sources:
            request = IngestRequest(
                tenant_id=tenant, source=guess_source(value), priority=priority, pipeline=pipeline
            )
            producer.send(settings.topic_requests, request, key=request.doc_key)
            console.print(f"queued {request.doc_key} (request {request.request_id})")


@app.command()
def admit(
    follow: Annotated[bool, typer.Option(help="Keep running until SIGINT/SIGTERM.")] = False,
    idle: Annotated[float, typer.Option(help="Without --follow: stop after this idle time.")] = 5.0,
) -> None:
    """Consume ingest requests and admit them to the ledger (bad messages are dead-lettered)."""
    settings = _settings()
    KafkaClient.from_settings(settings).ensure_topics()
    totals = run_admission(
        settings,
        pipelines=sorted(builtin_catalog(settings).pipelines),
        stop=_stop_on_signals(),
        idle_timeout=None if follow else idle,
        on_batch=lambda t: console.print(
            f"so far: {t.created} new, {t.duplicates} duplicate, {t.dead_letters} dead-lettered"
        ),
    )
    console.print(
        f"admitted {totals.created} new job(s), {totals.duplicates} duplicate(s), "
        f"{totals.dead_letters} dead letter(s) from {totals.messages} message(s)"
    )


# --- ledger -----------------------------------------------------------------------------------


@ledger_app.command("list")
def ledger_list(
    status: Annotated[JobStatus | None, typer.Option(help="Filter by status.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Filter by tenant.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Filter by pipeline.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Cursor from the previous page.")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show doc keys.")] = False,
) -> None:
    """List jobs, newest first."""
    ledger = open_ledger(_settings())
    try:
        flt = JobFilter(tenant_id=tenant, status=status, pipeline=pipeline)
        page = ledger.list_jobs(flt, cursor=cursor, limit=limit)
    finally:
        ledger.close()
    console.print(jobs_table(page.items, verbose=verbose))
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}")


@ledger_app.command("show")
def ledger_show(job_id: str) -> None:
    """Show one job with its history, as JSON."""
    ledger = open_ledger(_settings())
    try:
        console.print_json(ledger.get(job_id).model_dump_json())
    finally:
        ledger.close()


@ledger_app.command("counts")
def ledger_counts(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """Number of jobs per status."""
    ledger = open_ledger(_settings())
    try:
        for status, n in ledger.counts(tenant_id=tenant).items():
            console.print(f"{status.value:>10}: {n}")
    finally:
        ledger.close()


def main() -> None:
    """Console-script entry point: typed errors become one readable line and exit code 2."""
    logging.basicConfig(level=logging.WARNING, handlers=[RichHandler(console=err_console)])
    # librdkafka warns about every transient broker hiccup it then rides out itself
    logging.getLogger("ingest_ray.kafka.librdkafka").setLevel(logging.ERROR)
    try:
        app()
    except IngestError as exc:
        err_console.print(f"[red]error:[/] {exc.error_type}: {exc}")
        raise SystemExit(2) from exc
