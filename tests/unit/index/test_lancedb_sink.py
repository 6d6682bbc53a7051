from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_ray.index.errors import IndexSchemaError
from ingest_ray.index.lancedb_sink import LanceDbSink, sql_quote
from ingest_ray.index.settings import IndexSettings
from tests.unit.index.fakes import HashingEmbedder, document
from tests.unit.index.sink_contract import SinkContract


def lance_settings(root: Path, **overrides: object) -> IndexSettings:
    return IndexSettings(lancedb_dir=root / "index", **overrides)  # type: ignore[arg-type]


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[LanceDbSink]:
    sink = LanceDbSink(lance_settings(tmp_path))
    yield sink
    sink.close()


class TestLanceDbContract(SinkContract):
    pass


def test_lancedb_sink_data_survives_a_new_instance(tmp_path: Path) -> None:
    first = LanceDbSink(lance_settings(tmp_path))
    first.upsert([document("doc:a", ["persisted words"])])
    first.close()
    second = LanceDbSink(lance_settings(tmp_path))
    assert second.count() == 1
    assert second.search("persisted", None, k=1)[0].doc_key == "doc:a"


def test_lancedb_sink_refuses_a_table_of_another_dimension(tmp_path: Path) -> None:
    LanceDbSink(lance_settings(tmp_path)).upsert([document("doc:a", ["text"])])
    other = LanceDbSink(lance_settings(tmp_path, embedding_dim=8))
    with pytest.raises(IndexSchemaError, match="another dimension"):
        other.upsert([document("doc:a", ["text"], embedder=HashingEmbedder(dim=8))])


def test_lancedb_sink_optimizes_every_n_writes(tmp_path: Path) -> None:
    sink = LanceDbSink(lance_settings(tmp_path, lancedb_optimize_every=2))
    for n in range(3):
        sink.upsert([document(f"doc:{n}", [f"words number {n}"])])
    table = sink._chunks()
    stats = table.index_stats("text_idx")
    assert stats is not None and stats.num_indexed_rows >= 2
    assert sink.search("number", None, k=5)[0].doc_key.startswith("doc:")
    assert sink.count() == 3


def test_sql_quote_doubles_quotes() -> None:
    assert sql_quote("o'brien") == "'o''brien'"
