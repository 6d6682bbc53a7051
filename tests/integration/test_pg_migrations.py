"""Schema migrations of the PostgreSQL ledger on a real server, and the ledger CLI on it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from psycopg import sql

from ingest_ray.errors import ConfigurationError
from ingest_ray.ledger import NewJob, TransitionRequest
from ingest_ray.ledger import migrate as migrations
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.states import JobStatus


def _versions(dsn: str, schema: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("SELECT version, name FROM {}.ledger_schema_version ORDER BY version")
        return conn.execute(query.format(sql.Identifier(schema))).fetchall()


def test_migrate_applies_each_file_once_even_from_many_processes_at_once(
    pg_ledger_dsn: str, pg_schema: str
) -> None:
    barrier = threading.Barrier(8)
    applied: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            applied.extend(m.version for m in migrations.migrate(pg_ledger_dsn, pg_schema))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert applied == list(range(1, migrations.latest_version() + 1))
    assert _versions(pg_ledger_dsn, pg_schema) == [
        (m.version, m.name) for m in migrations.migrations()
    ]
    assert migrations.migrate(pg_ledger_dsn, pg_schema) == []  # idempotent


def test_ledger_without_auto_migrate_asks_for_migrate(pg_ledger_dsn: str, pg_schema: str) -> None:
    ledger = PostgresLedger(pg_ledger_dsn, schema=pg_schema, auto_migrate=False)
    with pytest.raises(ConfigurationError, match="ingest-ray ledger migrate"):
        ledger.create(NewJob("t", "d", "auto"))
    migrations.migrate(pg_ledger_dsn, pg_schema)
    assert ledger.create(NewJob("t", "d", "auto")).created
    ledger.close()


def test_migrate_refuses_an_edited_migration_and_a_newer_schema(
    pg_ledger_dsn: str, pg_schema: str
) -> None:
    migrations.migrate(pg_ledger_dsn, pg_schema)
    table = sql.SQL("{}.ledger_schema_version").format(sql.Identifier(pg_schema))
    with psycopg.connect(pg_ledger_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {} SET checksum = 'x' WHERE version = 1").format(table))
    with pytest.raises(ConfigurationError, match="changed after it was applied"):
        migrations.migrate(pg_ledger_dsn, pg_schema)
    with psycopg.connect(pg_ledger_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (99, 'future', 'y')").format(
                table
            )
        )
    with pytest.raises(ConfigurationError, match="newer than this"):
        migrations.check_current(pg_ledger_dsn, pg_schema)


def _cli(dsn: str, schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INGEST_RAY_LEDGER_BACKEND": "postgres", "INGEST_RAY_POSTGRES_DSN": dsn,
           "INGEST_RAY_POSTGRES_LEDGER_SCHEMA": schema, "COLUMNS": "200"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ingest_ray", "ledger", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_ledger_cli_migrates_counts_and_prunes_on_postgres(
    pg_ledger_dsn: str, pg_schema: str
) -> None:
    first = _cli(pg_ledger_dsn, pg_schema, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_init" in first.stdout
    assert f"at version {migrations.latest_version()}" in first.stdout
    ledger = PostgresLedger(pg_ledger_dsn, schema=pg_schema)
    done = ledger.create(NewJob("t1", "doc:done", "auto")).job_id
    ledger.transition(TransitionRequest(done, JobStatus.QUEUED, JobStatus.CANCELLED))
    kept = ledger.create(NewJob("t2", "doc:other", "auto")).job_id
    ledger.transition(TransitionRequest(kept, JobStatus.QUEUED, JobStatus.CANCELLED))
    time.sleep(1.1)
    counts = _cli(pg_ledger_dsn, pg_schema, "counts")
    assert "cancelled: 2" in counts.stdout, counts.stdout + counts.stderr
    pruned = _cli(pg_ledger_dsn, pg_schema, "prune", "--older-than", "1s", "--tenant", "t1")
    assert pruned.returncode == 0, pruned.stderr
    assert "tenant t1: 1 finished job(s) deleted" in pruned.stdout
    assert ledger.get_many([done, kept])[0] is None
    assert ledger.get(kept).status is JobStatus.CANCELLED
    ledger.close()
