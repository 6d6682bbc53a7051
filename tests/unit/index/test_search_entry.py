from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest

from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.index import IndexSettings, build_sink, run_entity_search, run_search
from ingest_ray.index.errors import InvalidEntityError
from ingest_ray.index.lancedb_sink import LanceDbSink
from ingest_ray.index.pgvector_sink import PgVectorSink
from ingest_ray.stages.base import StageInput
from ingest_ray.stages.index import MetaIndexStage
from tests.unit.index.fakes import PASSAGES, HashingEmbedder, document


def test_index_settings_from_environment_and_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_INDEX_BACKEND", "pgvector")
    monkeypatch.setenv("INGEST_RAY_POSTGRES_DSN", "postgresql://u@127.0.0.1:1/db")
    monkeypatch.setenv("INGEST_RAY_RRF_K", "30")
    settings = IndexSettings()
    assert (settings.index_backend, settings.rrf_k) == ("pgvector", 30)
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert settings.lancedb_dir.name == "index"


def test_index_settings_refuse_unsafe_table_names() -> None:
    with pytest.raises(ValueError):
        IndexSettings(chunks_table="chunks; DROP TABLE x")


def test_build_sink_picks_backend_without_connecting(tmp_path: Path) -> None:
    lance = build_sink(IndexSettings(lancedb_dir=tmp_path / "never-created"))
    assert isinstance(lance, LanceDbSink) and lance.backend == "lancedb"
    assert not (tmp_path / "never-created").exists()
    pg = build_sink(
        IndexSettings(index_backend="pgvector", postgres_dsn="postgresql://u@127.0.0.1:1/db")
    )
    assert isinstance(pg, PgVectorSink) and pg.backend == "pgvector"
    pg.close()


def test_run_search_with_injected_embedder(tmp_path: Path) -> None:
    settings = IndexSettings(lancedb_dir=tmp_path / "index")
    sink = LanceDbSink(settings)
    sink.upsert([document(key, texts) for key, texts in PASSAGES.items()])
    hits = run_search(settings, "coral reef recovery", k=2, embedder=HashingEmbedder())
    assert hits[0].doc_key == "doc:ocean"
    assert len(hits) == 2
    assert run_search(settings, "coral", k=5, tenant="nobody", embedder=HashingEmbedder()) == []


def test_run_entity_search_rejects_junk(tmp_path: Path) -> None:
    with pytest.raises(InvalidEntityError):
        run_entity_search(IndexSettings(lancedb_dir=tmp_path), "not an id")


def test_meta_index_and_search_with_the_real_embedder(tmp_path: Path) -> None:
    """The project's default model (engineer D's embedder) end to end: 384-dim vectors."""
    settings = IndexSettings(lancedb_dir=tmp_path / "index")
    stage = MetaIndexStage(settings)  # builds the real embedder lazily
    works = {
        "doi:10.1/reef": ("Coral bleaching", "Marine heatwaves drive mass coral bleaching."),
        "doi:10.1/rail": ("Railway timetables", "Punctual trains matter to commuters."),
    }
    items = [
        StageInput(
            job_id=f"j{n}",
            tenant_id="t1",
            doc_key=key,
            pipeline="two_phase",
            stage="meta_index",
            attempt=1,
            source=DocumentSource(kind=SourceKind.DOI, value=key.removeprefix("doi:")),
            outputs={"metadata": {"work": {"title": title, "abstract": abstract}}},
        )
        for n, (key, (title, abstract)) in enumerate(works.items())
    ]
    results = asyncio.run(stage.run_batch(items))
    assert [r.data["model"] for r in results] == ["all-MiniLM-L6-v2"] * 2  # type: ignore[union-attr]
    asyncio.run(stage.aclose())
    hits = run_search(settings, "ocean warming harms reefs", k=2)
    assert hits[0].doc_key == "doi:10.1/reef"
    assert hits[0].vector_rank == 1
