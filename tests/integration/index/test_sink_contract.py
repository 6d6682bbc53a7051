"""The index contract on both backends: LanceDB (embedded: a local directory, and on S3) and
PostgreSQL + pgvector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest_ray.index.base import IndexSink
from ingest_ray.index.errors import IndexSchemaError, IndexUnavailableError
from ingest_ray.index.lancedb_sink import LanceDbSink
from ingest_ray.index.pgvector_sink import PgVectorSink
from ingest_ray.index.settings import IndexSettings
from ingest_ray.ports import free_port
from tests.unit.index.fakes import HashingEmbedder, document
from tests.unit.index.sink_contract import SinkContract


@pytest.fixture(params=["lancedb", "lancedb-s3", "pgvector"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexSink]:
    if request.param == "lancedb":
        built: IndexSink = LanceDbSink(IndexSettings(lancedb_dir=tmp_path / "index"))
    elif request.param == "lancedb-s3":  # on the loopback S3 server (tests/s3server.py)
        server = request.getfixturevalue("s3_env")
        built = LanceDbSink(IndexSettings(index_uri=f"s3://{server.new_bucket()}/index"))
    else:
        built = PgVectorSink(request.getfixturevalue("pg_settings"))
    yield built
    built.close()


class TestSinkContract(SinkContract):
    pass


def test_pgvector_schema_has_the_promised_indexes(pg_settings: IndexSettings) -> None:
    sink = PgVectorSink(pg_settings)
    sink.count()  # creates the schema
    sink.close()
    with psycopg.connect(pg_settings.postgres_dsn) as conn:
        indexes = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                (pg_settings.chunks_table,),
            ).fetchall()
        )
        vector_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = 'vector'",
            (pg_settings.chunks_table,),
        ).fetchone()
    definitions = " ".join(indexes.values())
    assert "USING hnsw (vector vector_cosine_ops)" in definitions
    assert "USING gin (tsv)" in definitions
    assert "(tenant_id, doc_key, chunk_id)" in definitions  # the primary key
    assert vector_type == ("vector(384)",)


def test_pgvector_refuses_a_table_of_another_dimension(pg_settings: IndexSettings) -> None:
    first = PgVectorSink(pg_settings)
    first.upsert([document("doc:a", ["text"])])
    first.close()
    other = PgVectorSink(pg_settings.model_copy(update={"embedding_dim": 8}))
    with pytest.raises(IndexSchemaError, match="dim 384"):
        other.upsert([document("doc:a", ["text"], embedder=HashingEmbedder(dim=8))])
    other.close()


def test_pgvector_unreachable_server_is_retryable() -> None:
    settings = IndexSettings(
        index_backend="pgvector",
        postgres_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        postgres_connect_timeout_s=2,
    )
    sink = PgVectorSink(settings)
    with pytest.raises(IndexUnavailableError) as caught:
        sink.search("anything", np.zeros(384, dtype=np.float32), k=1)
    assert caught.value.retryable


def test_pgvector_reconnects_after_the_connection_dies(pg_settings: IndexSettings) -> None:
    sink = PgVectorSink(pg_settings)
    sink.upsert([document("doc:a", ["before"])])
    assert sink._conn is not None
    with psycopg.connect(pg_settings.postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (sink._conn.info.backend_pid,))
    with pytest.raises(IndexUnavailableError):
        sink.count()
    assert sink.count() == 1  # the next call opens a fresh connection
    sink.close()


def test_temp_postgres_starts_on_loopback_and_cleans_up() -> None:
    from ingest_ray.index.pgstack import TempPostgres

    with TempPostgres() as cluster:  # pytest's tmp_path is not readable by the postgres user
        root = cluster.root
        assert root is not None and root.exists()
        assert "@127.0.0.1:" in cluster.dsn
        with psycopg.connect(cluster.dsn) as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            assert row.fetchone() is not None
    assert not root.exists()
    assert cluster.port is None
