"""``ingest-ray ledger migrate`` and ``ledger prune``: schema and retention of the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from ingest_ray.commands.common import console
from ingest_ray.config import get_settings
from ingest_ray.errors import ConfigurationError
from ingest_ray.ledger import migrate as migrations
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.ledger.retention import RetentionPolicy, apply_retention, parse_age


def ledger_migrate() -> None:
    """Apply pending PostgreSQL ledger migrations (idempotent; safe to run from many hosts)."""
    settings = get_settings()
    if settings.ledger_backend != "postgres":
        console.print("the ledger backend is redis: it has no schema to migrate")
        return
    schema = settings.postgres_ledger_schema
    applied = migrations.migrate(
        settings.postgres_dsn, schema, connect_timeout_s=settings.postgres_connect_timeout_s
    )
    for m in applied:
        console.print(f"applied {m.version:04d}_{m.name}")
    console.print(f"schema {schema!r} is at version {migrations.latest_version()}")


def ledger_prune(
    older_than: Annotated[
        str | None,
        typer.Option(help="Delete jobs finished longer ago than this (30d, 12h, 2w)."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's jobs.")] = None,
) -> None:
    """Delete finished jobs (record, history, events, keys) older than the retention age.

    Without --older-than the settings decide: INGEST_RAY_LEDGER_RETENTION_DAYS for every
    tenant, INGEST_RAY_LEDGER_RETENTION_DAYS_BY_TENANT (JSON) for some.
    """
    settings = get_settings()
    policy = _policy(RetentionPolicy.from_settings(settings), older_than, tenant)
    now = datetime.now(UTC)
    if not policy.cutoffs(now):
        raise ConfigurationError(
            "no retention age: pass --older-than or set INGEST_RAY_LEDGER_RETENTION_DAYS"
        )
    ledger = open_ledger(settings)
    try:
        deleted = apply_retention(ledger, policy, now=now)
    finally:
        ledger.close()
    for who, n in deleted.items():
        scope = "every other tenant" if who == "*" else f"tenant {who}"
        console.print(f"{scope}: {n} finished job(s) deleted")


def _policy(
    configured: RetentionPolicy, older_than: str | None, tenant: str | None
) -> RetentionPolicy:
    """The command line's age wins over the settings; --tenant narrows to one tenant."""
    if older_than is not None:
        age = parse_age(older_than)
        return (
            RetentionPolicy(default=age)
            if tenant is None
            else RetentionPolicy(by_tenant={tenant: age})
        )
    if tenant is None:
        return configured
    age_of = configured.by_tenant.get(tenant, configured.default)
    return RetentionPolicy(by_tenant={tenant: age_of} if age_of is not None else {})
