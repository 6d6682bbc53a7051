"""Versioned schema migrations of the PostgreSQL ledger: plain SQL files applied in order.

``ingest_ray/ledger/migrations/NNNN_name.sql`` are applied, lowest version first, inside the
ledger's schema, all pending ones in one transaction under a transaction-scoped advisory lock, so
two processes migrating at once apply each file exactly once (the second waits, then finds
nothing to do). Every applied file is recorded in ``ledger_schema_version`` with its sha256; an
applied file whose text changed since, or a database newer than this code, is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from ingest_ray.errors import ConfigurationError

VERSION_TABLE = "ledger_schema_version"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file of the package."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file's text, recorded when applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The package's migrations in version order (versions must be 1, 2, 3 ... without gaps)."""
    found = []
    for entry in resources.files("ingest_ray.ledger").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ConfigurationError(f"ledger migrations are not numbered 1..n: {found}")
    return found


def latest_version() -> int:
    """The schema version this code expects."""
    return len(migrations())


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"ingest_ray.ledger.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _applied(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> dict[int, str]:
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{VERSION_TABLE}",)
    ).fetchone()
    if not exists or not exists[0]:
        return {}
    query = sql.SQL("SELECT version, checksum FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(VERSION_TABLE)
    )
    return {int(v): str(c) for v, c in conn.execute(query).fetchall()}  # type: ignore[call-overload]


def current_version(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int:
    """The highest version applied to ``schema`` (0 for a fresh database)."""
    return max(_applied(conn, schema), default=0)


def _verify(applied: dict[int, str], known: list[Migration], schema: str) -> None:
    newer = sorted(v for v in applied if v > len(known))
    if newer:
        raise ConfigurationError(
            f"the ledger schema {schema!r} is at version {newer[-1]}, newer than this "
            f"ingest_ray knows ({len(known)}); upgrade ingest_ray"
        )
    for m in known:
        if m.version in applied and applied[m.version] != m.checksum:
            raise ConfigurationError(
                f"ledger migration {m.version:04d}_{m.name}.sql changed after it was applied "
                f"to schema {schema!r}; never edit an applied migration, add a new one"
            )


def migrate(dsn: str, schema: str, *, connect_timeout_s: float = 10.0) -> list[Migration]:
    """Apply the pending migrations to ``schema`` (created when missing); answer those applied.

    Idempotent and safe to run from several processes at once.
    """
    known = migrations()
    with psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout_s))) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        applied = _applied(conn, schema)
        _verify(applied, known, schema)
        pending = [m for m in known if m.version not in applied]
        if not pending:
            return []
        ident = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(VERSION_TABLE))
        )
        for m in pending:
            conn.execute(m.sql.encode())
            conn.execute(
                sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(
                    sql.Identifier(VERSION_TABLE)
                ),
                (m.version, m.name, m.checksum),
            )
        # the connection's context manager commits: every pending file, or none of them
    return pending


def check_current(dsn: str, schema: str, *, connect_timeout_s: float = 10.0) -> None:
    """Raise :class:`ConfigurationError` unless ``schema`` is at this code's version."""
    known = migrations()
    with psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout_s))) as conn:
        applied = _applied(conn, schema)
    _verify(applied, known, schema)
    missing = [m for m in known if m.version not in applied]
    if missing:
        raise ConfigurationError(
            f"the ledger schema {schema!r} lacks migration(s) "
            f"{', '.join(f'{m.version:04d}_{m.name}' for m in missing)}: run "
            "`ingest-ray ledger migrate` (or set INGEST_RAY_POSTGRES_AUTO_MIGRATE=true)"
        )


def drop_schema(dsn: str, schema: str, *, connect_timeout_s: float = 10.0) -> None:
    """Delete a ledger schema and everything in it (throw-away ledgers of tests, benchmarks)."""
    with psycopg.connect(
        dsn, autocommit=True, connect_timeout=max(1, round(connect_timeout_s))
    ) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
