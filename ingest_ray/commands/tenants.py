"""``ingest-ray tenant set|show|reset`` and ``ingest-ray status --tenants``.

Limits are stored in Redis (``RedisKeys.tenant_limits``); every Dispatcher re-reads them within a
few seconds, so they apply without a restart. A tenant without a record of its own runs on the
settings' limits (``INGEST_RAY_TENANT_DEFAULT``, ``INGEST_RAY_TENANT_LIMITS``); ``set`` on such a
tenant creates its record from those.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import redis
import typer
from rich.table import Table

from ingest_ray.commands.common import console, err_console, settings
from ingest_ray.tenants import AdmissionSnapshot, TenantLimitsError, TenantStore, read_snapshot

tenant_app = typer.Typer(help="Tenants' fair-share weights, in-flight caps and hourly quotas.")


@contextmanager
def _redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings().redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@tenant_app.command("set")
def tenant_set(
    tenant: Annotated[str, typer.Argument(help="Tenant id (created with defaults if new).")],
    weight: Annotated[float | None, typer.Option(help="Fair-share weight, > 0.")] = None,
    max_in_flight: Annotated[
        int | None, typer.Option(help="Jobs started and not finished, at most (>= 1).")
    ] = None,
    jobs_per_hour: Annotated[
        int | None, typer.Option(help="Jobs started in any hour, at most (>= 1).")
    ] = None,
) -> None:
    """Change a tenant's limits; running Dispatchers apply them within a few seconds."""
    cfg = settings()
    with _redis() as client:
        store = TenantStore(client, cfg.redis_prefix)
        default = cfg.tenant_limits.get(tenant, cfg.tenant_default)
        try:
            limits, created = store.set(
                tenant, default=default, weight=weight, max_in_flight=max_in_flight,
                jobs_per_hour=jobs_per_hour,
            )  # fmt: skip
        except TenantLimitsError as exc:
            err_console.print(f"[red]error:[/] {exc} (nothing was changed)")
            raise typer.Exit(2) from exc
    verb = "created" if created else "updated"
    console.print(f"tenant {tenant} {verb}: {limits.describe()}")


@tenant_app.command("reset")
def tenant_reset(
    tenant: str,
    max_in_flight: Annotated[bool, typer.Option("--max-in-flight", help="Drop only the cap.")] = (
        False
    ),
    jobs_per_hour: Annotated[
        bool, typer.Option("--jobs-per-hour", help="Drop only the quota.")
    ] = False,
) -> None:
    """Drop a tenant's cap or quota, or (without options) its whole record (back to defaults)."""
    fields = [f for f, on in (("max_in_flight", max_in_flight), ("jobs_per_hour", jobs_per_hour))
              if on]  # fmt: skip
    with _redis() as client:
        limits = TenantStore(client, settings().redis_prefix).clear(tenant, *fields)
    console.print(f"tenant {tenant}: {limits.describe() if limits else 'on the defaults'}")


@tenant_app.command("show")
def tenant_show(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every tenant with limits of its own, and the defaults."""
    cfg = settings()
    with _redis() as client:
        stored = TenantStore(client, cfg.redis_prefix).all()
    if as_json:
        data = {t: v.model_dump() for t, v in stored.items()}
        console.print_json(json.dumps({"default": cfg.tenant_default.model_dump(), **data}))
        return
    table = Table("tenant", "weight", "max in flight", "jobs/h", "from")
    rows = [("(default)", cfg.tenant_default, "settings")]
    rows += [(t, v, "settings") for t, v in cfg.tenant_limits.items() if t not in stored]
    rows += [(t, v, "tenant set") for t, v in sorted(stored.items())]
    for name, lim, origin in rows:
        table.add_row(name, f"{lim.weight:g}", str(lim.max_in_flight or "-"),
                      str(lim.jobs_per_hour or "-"), origin)  # fmt: skip
    console.print(table)


def print_tenants(runtime: str | None = None) -> None:
    """The admission snapshot of the runtime's Dispatcher (``status --tenants``)."""
    cfg = settings()
    name = runtime or cfg.runtime_name
    with _redis() as client:
        snapshot = read_snapshot(client, cfg.redis_prefix, name)
    if snapshot is None:
        console.print(f"[yellow]no admission snapshot of runtime {name} (is a worker running?)")
        return
    console.print(tenants_table(snapshot))
    if snapshot.sources:
        console.print(sources_table(snapshot))
    age = time.time() - snapshot.at
    console.print(f"backlog in the ledger: {snapshot.backlog} jobs; snapshot {age:.1f}s old"
                  + (f"; [red]{snapshot.error}" if snapshot.error else ""))  # fmt: skip


def tenants_table(snapshot: AdmissionSnapshot) -> Table:
    """One row per tenant."""
    table = Table("tenant", "weight", "share", "fair share", "in flight", "waiting",
                  "quota used", "wait p50 s", "wait p99 s", "blocked")  # fmt: skip
    for t in sorted(snapshot.tenants.values(), key=lambda t: t.tenant_id):
        cap = f"/{t.max_in_flight}" if t.max_in_flight else ""
        quota = f"/{t.jobs_per_hour}" if t.jobs_per_hour else ""
        table.add_row(
            t.tenant_id, f"{t.weight:g}", f"{t.share:.1%}", f"{t.fair_share:.1%}",
            f"{t.in_flight}{cap}", str(t.waiting), f"{t.quota_used}{quota}",
            _seconds(t.wait_p50_s), _seconds(t.wait_p99_s), t.blocked or "",
        )  # fmt: skip
    return table


def sources_table(snapshot: AdmissionSnapshot) -> Table:
    """One row per rate-limited source jobs wait for."""
    table = Table("source", "rate/s", "waiting", "tokens", "next in s", "granted", "throttled")
    for s in sorted(snapshot.sources.values(), key=lambda s: s.source):
        table.add_row(s.source, f"{s.rate_per_s:g}", str(s.waiting), str(s.tokens),
                      _seconds(s.next_token_in_s), str(s.granted), str(s.throttled))  # fmt: skip
    return table


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
