"""PostgreSQL + pgvector for the index tests.

``POSTGRES_DSN`` is used when set (the database must have, or allow creating, the ``vector``
extension); otherwise a throw-away cluster is started with :class:`TempPostgres`. Under
``CI=true`` a missing PostgreSQL or pgvector fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ingest_ray.errors import StackError
from ingest_ray.index.pgstack import TempPostgres
from ingest_ray.index.settings import IndexSettings
from tests.conftest import in_ci


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"PostgreSQL/pgvector unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL/pgvector unavailable: {reason}")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL DSN whose database has the vector extension."""
    dsn = os.environ.get("POSTGRES_DSN")
    if dsn:
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            _unavailable(f"POSTGRES_DSN={dsn}: {exc}")
        yield dsn
        return
    cluster = TempPostgres()
    try:
        cluster.start()
    except StackError as exc:
        _unavailable(str(exc))
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


@pytest.fixture
def pg_settings(pg_dsn: str) -> Iterator[IndexSettings]:
    """Settings with tables of this test's own, dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    settings = IndexSettings(
        index_backend="pgvector",
        postgres_dsn=pg_dsn,
        chunks_table=f"test_chunks_{tag}",
        entities_table=f"test_mentions_{tag}",
    )
    yield settings
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in (settings.chunks_table, settings.entities_table):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
