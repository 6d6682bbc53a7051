"""One index URI for both backends: postgresql:// is pgvector, a path or s3:// is LanceDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest_ray.index import IndexSettings, build_sink
from ingest_ray.index.lancedb_sink import LanceDbSink
from ingest_ray.index.pgvector_sink import PgVectorSink


@pytest.mark.parametrize(
    ("uri", "backend", "lance", "dsn"),
    [
        ("postgresql://u@db:5432/ingest", "pgvector", None, "postgresql://u@db:5432/ingest"),
        ("postgres://u@db/ingest", "pgvector", None, "postgres://u@db/ingest"),
        ("s3://bucket/index", "lancedb", "s3://bucket/index", None),
        ("file:///mnt/shared/index", "lancedb", "/mnt/shared/index", None),
        ("/srv/index", "lancedb", "/srv/index", None),
    ],
)
def test_index_uri_selects_backend_and_location(
    uri: str, backend: str, lance: str | None, dsn: str | None
) -> None:
    settings = IndexSettings(index_uri=uri)
    assert settings.backend == backend
    if lance is not None:
        assert settings.lancedb_uri == lance
        assert settings.lancedb_is_local == (not lance.startswith("s3://"))
    if dsn is not None:
        assert settings.dsn == dsn


def test_index_without_uri_keeps_backend_dir_and_dsn(tmp_path: Path) -> None:
    settings = IndexSettings(lancedb_dir=tmp_path, postgres_dsn="postgresql://x/y")
    assert (settings.backend, settings.lancedb_uri, settings.dsn) == (
        "lancedb",
        str(tmp_path),
        "postgresql://x/y",
    )


def test_index_uri_contradicting_the_backend_is_refused() -> None:
    with pytest.raises(ValidationError, match="index_backend"):
        IndexSettings(index_uri="s3://bucket/index", index_backend="pgvector")
    assert IndexSettings(index_uri="postgresql://h/db", index_backend="pgvector").backend == (
        "pgvector"
    )


def test_index_uri_from_the_environment_builds_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_INDEX_URI", "postgresql://u@127.0.0.1:1/db")
    pg = build_sink(IndexSettings())
    assert isinstance(pg, PgVectorSink)
    pg.close()
    monkeypatch.setenv("INGEST_RAY_INDEX_URI", "s3://bucket/index")
    monkeypatch.setenv("INGEST_RAY_INDEX_STORAGE_OPTIONS", '{"region": "eu-west-1"}')
    lance = build_sink(IndexSettings())
    assert isinstance(lance, LanceDbSink)
    assert lance.settings.index_storage_options == {"region": "eu-west-1"}
