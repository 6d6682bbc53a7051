from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest_ray.config import Settings
from ingest_ray.errors import PermanentError
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.index.base import META_CHUNK_ID
from ingest_ray.index.errors import ArtifactMissingError, IndexSchemaError
from ingest_ray.index.lancedb_sink import LanceDbSink
from ingest_ray.index.search import run_entity_search
from ingest_ray.index.settings import IndexSettings
from ingest_ray.stages import factories
from ingest_ray.stages.base import Stage, StageInput, StageOutput
from ingest_ray.stages.index import IndexStage, MetaIndexStage
from ingest_ray.stages.mapping import MappingStage
from ingest_ray.storage.blobs import FileBlobStore
from tests.conftest import FIXTURES
from tests.unit.index.fakes import HashingEmbedder

PEERJ = FIXTURES / "apis" / "openalex" / "work_W2741809807_peerj_oa_gold.json"


@pytest.fixture
def settings(tmp_path: Path) -> IndexSettings:
    return IndexSettings(lancedb_dir=tmp_path / "index")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def sink(settings: IndexSettings) -> Iterator[LanceDbSink]:
    sink = LanceDbSink(settings)
    yield sink
    sink.close()


def item(
    doc_key: str,
    outputs: Mapping[str, Mapping[str, Any]],
    *,
    tenant: str = "t1",
    source: DocumentSource | None = None,
    stage: str = "index",
) -> StageInput:
    return StageInput(
        job_id=f"job-{doc_key}",
        tenant_id=tenant,
        doc_key=doc_key,
        pipeline="two_phase",
        stage=stage,
        attempt=1,
        source=source or DocumentSource(kind=SourceKind.DOI, value="10.1/x"),
        outputs=outputs,
    )


def chunk_outputs(blobs: FileBlobStore, texts: list[str]) -> dict[str, dict[str, Any]]:
    """What the chunk and embed stages hand on, stored the way their contract says."""
    chunks = [
        {
            "chunk_id": f"c{i:04d}",
            "text": text,
            "page_start": i,
            "page_end": i + 1,
            "section_path": ["Results"],
            "token_count": len(text.split()),
        }
        for i, text in enumerate(texts)
    ]
    vectors = HashingEmbedder().embed(texts)
    return {
        "chunk": {"chunks_sha256": blobs.put_json(chunks), "chunk_count": len(chunks)},
        "embed": {
            "embeddings_sha256": blobs.put(vectors.astype("<f4").tobytes()),
            "model": "hashing-test",
            "dim": 384,
            "count": len(texts),
        },
    }


def run(stage: Stage, *items: StageInput) -> list[StageOutput | Exception]:
    return list(asyncio.run(stage.run_batch(list(items))))


def test_stages_satisfy_the_stage_protocol(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    stages = [
        MetaIndexStage(settings, embedder=HashingEmbedder(), sink=sink),
        IndexStage(settings, blobs, sink=sink),
        MappingStage(settings, blobs, sink=sink),
    ]
    assert [s.name for s in stages] == ["meta_index", "index", "mapping"]
    assert all(isinstance(s, Stage) for s in stages)
    assert stages[0].batch_size > 1 and stages[1].batch_size > 1


def test_index_stage_indexes_chunks_and_replays_leave_one_copy(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    stage = IndexStage(settings, blobs, sink=sink)
    outputs = chunk_outputs(blobs, ["first finding", "second finding", "third finding"])
    job = item("doi:10.1/x", {**outputs, "metadata": {"work": {"title": "T", "doi": "10.1/X"}}})
    first = asyncio.run(stage.run(job))
    assert first.data == {"indexed": 3, "sink": "lancedb"}
    asyncio.run(stage.run(job))
    run(stage, job, job)
    assert sink.count() == 3
    hit = sink.search("second finding", None, k=1)[0]
    assert (hit.chunk_id, hit.title, hit.doi, hit.page_end) == ("c0001", "T", "10.1/x", 2)


def test_index_stage_reindex_with_fewer_chunks_removes_stale(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    stage = IndexStage(settings, blobs, sink=sink)
    asyncio.run(stage.run(item("doc:a", chunk_outputs(blobs, ["a1", "a2", "a3"]))))
    asyncio.run(stage.run(item("doc:a", chunk_outputs(blobs, ["a1 revised"]))))
    assert sink.count(doc_key="doc:a") == 1


def test_index_stage_batch_fails_only_the_bad_items(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    stage = IndexStage(settings, blobs, sink=sink)
    good = item("doc:good", chunk_outputs(blobs, ["good text"]))
    no_embed = item("doc:no-embed", {"chunk": chunk_outputs(blobs, ["x"])["chunk"]})
    short = chunk_outputs(blobs, ["one", "two"])
    short["embed"] = {**short["embed"], "embeddings_sha256": blobs.put(b"\0" * 384 * 4)}
    wrong_size = item("doc:wrong-size", short)
    missing_blob = item("doc:missing", chunk_outputs(blobs, ["y"]))
    blobs.path(missing_blob.outputs["chunk"]["chunks_sha256"]).unlink()
    results = run(stage, good, no_embed, wrong_size, missing_blob)
    assert isinstance(results[0], StageOutput) and results[0].data["indexed"] == 1
    assert isinstance(results[1], ArtifactMissingError)
    assert isinstance(results[2], IndexSchemaError)
    assert isinstance(results[3], ArtifactMissingError)
    assert all(isinstance(r, PermanentError) for r in results[1:])
    assert sink.count() == 1


def test_index_stage_rejects_a_malformed_chunk_list(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    outputs = chunk_outputs(blobs, ["x"])
    outputs["chunk"] = {"chunks_sha256": blobs.put(b'[{"text": "no id"}]'), "chunk_count": 1}
    with pytest.raises(IndexSchemaError):
        asyncio.run(IndexStage(settings, blobs, sink=sink).run(item("doc:a", outputs)))


def test_meta_index_stage_makes_document_searchable_before_full_text(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    embedder = HashingEmbedder()
    stage = MetaIndexStage(settings, embedder=embedder, sink=sink)
    work = {"title": "Reef bleaching", "abstract": "Warm water stresses corals.", "doi": "10.9/r"}
    job = item("doi:10.9/r", {"metadata": {"work": work}}, stage="meta_index")
    out = asyncio.run(stage.run(job))
    assert out.data["indexed"] == 1 and out.data["chunk_id"] == META_CHUNK_ID
    asyncio.run(stage.run(job))
    hits = sink.search("corals warm water", embedder.embed(["corals warm water"])[0], k=3)
    assert [(h.doc_key, h.chunk_id, h.title) for h in hits] == [
        ("doi:10.9/r", META_CHUNK_ID, "Reef bleaching")
    ]
    index = IndexStage(settings, blobs, sink=sink)
    asyncio.run(index.run(item("doi:10.9/r", chunk_outputs(blobs, ["full text chunk"]))))
    assert sink.count(doc_key="doi:10.9/r") == 2  # meta survives the full-text write


def test_meta_index_stage_without_title_or_abstract_writes_nothing(
    settings: IndexSettings, sink: LanceDbSink
) -> None:
    embedder = HashingEmbedder()
    stage = MetaIndexStage(settings, embedder=embedder, sink=sink)
    job = item("pdf_path:/x.pdf", {"metadata": {"work": {"title": None, "abstract": None}}})
    out = asyncio.run(stage.run(job))
    assert out.data["indexed"] == 0 and "no title or abstract" in out.data["note"]
    assert embedder.calls == 0
    assert sink.count() == 0


def test_meta_index_stage_batches_into_one_model_call(
    settings: IndexSettings, sink: LanceDbSink
) -> None:
    embedder = HashingEmbedder()
    stage = MetaIndexStage(settings, embedder=embedder, sink=sink)
    jobs = [
        item(f"doc:{n}", {"metadata": {"work": {"title": f"Paper {n}", "abstract": None}}})
        for n in range(3)
    ]
    results = run(stage, *jobs, item("doc:empty", {}))
    assert [r.data["indexed"] for r in results if isinstance(r, StageOutput)] == [1, 1, 1, 0]
    assert embedder.calls == 1
    assert sink.count() == 3


def test_meta_index_stage_uses_request_title_for_files(
    settings: IndexSettings, sink: LanceDbSink
) -> None:
    stage = MetaIndexStage(settings, embedder=HashingEmbedder(), sink=sink)
    job = StageInput(
        job_id="j",
        tenant_id="t1",
        doc_key="pdf_path:/tmp/x.pdf",
        pipeline="two_phase",
        stage="meta_index",
        attempt=1,
        source=DocumentSource(kind=SourceKind.PDF_PATH, value="/tmp/x.pdf"),
        metadata={"title": "User given title"},
        outputs={"metadata": {"work": {"title": None}}},
    )
    assert asyncio.run(stage.run(job)).data["indexed"] == 1
    assert sink.search("user given", None, k=1)[0].title == "User given title"


def test_mapping_stage_maps_a_real_record_and_cited_dois(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    from ingest_ray.adapters.openalex import OpenAlexWork

    work = OpenAlexWork.model_validate(json.loads(PEERJ.read_text())).to_record()
    outputs = chunk_outputs(blobs, ["We build on 10.1371/journal.pone.0000030.", "No DOI here."])
    job = item("doi:10.7717/peerj.4375", {**outputs, "metadata": {"work": work}}, stage="mapping")
    asyncio.run(IndexStage(settings, blobs, sink=sink).run(job))
    stage = MappingStage(settings, blobs, sink=sink)
    out = asyncio.run(stage.run(job))
    assert out.data["by_type"]["cited_doi"] == 1
    assert out.data["by_type"]["author"] == 9
    asyncio.run(stage.run(job))  # a replay changes nothing
    for typed in (
        "https://orcid.org/0000-0003-1613-5981",
        "0000-0003-1613-5981",
        "https://ror.org/0161xgx34",
        "10.1371/JOURNAL.PONE.0000030",
        "https://openalex.org/T10102",
        "10.7717/peerj.4375",
    ):
        hits = run_entity_search(settings, typed, tenant="t1")
        assert [h.doc_key for h in hits] == ["doi:10.7717/peerj.4375"], typed
    assert hits[0].title == work["title"]
    assert run_entity_search(settings, "0000-0003-1613-5981", tenant="other") == []


def test_mapping_stage_reads_text_sources_without_chunks(
    settings: IndexSettings, sink: LanceDbSink
) -> None:
    source = DocumentSource(kind=SourceKind.TEXT, value="Cites doi:10.1101/097196.")
    job = item(source.doc_key(), {}, source=source, stage="mapping")
    out = asyncio.run(MappingStage(settings, None, sink=sink).run(job))
    assert out.data["entities"] == 1
    assert [h.entity_type for h in sink.find_by_entity("doi:10.1101/097196")] == ["cited_doi"]


def test_mapping_stage_missing_chunk_blob_is_permanent(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    job = item("doc:a", {"chunk": {"chunks_sha256": "0" * 64}}, stage="mapping")
    with pytest.raises(ArtifactMissingError):
        asyncio.run(MappingStage(settings, blobs, sink=sink).run(job))


def test_index_stage_embeddings_blob_round_trip_is_little_endian(
    settings: IndexSettings, blobs: FileBlobStore, sink: LanceDbSink
) -> None:
    outputs = chunk_outputs(blobs, ["orientation check"])
    stored = np.frombuffer(blobs.get(outputs["embed"]["embeddings_sha256"]), dtype="<f4")
    asyncio.run(IndexStage(settings, blobs, sink=sink).run(item("doc:a", outputs)))
    hit = sink.search("", stored.astype(np.float32), k=1)[0]
    assert hit.doc_key == "doc:a" and hit.vector_rank == 1


def test_the_meta_index_factory_loads_the_embedder_as_the_stage_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool's actor builds its stages as it starts, so the model is loaded before the first
    call, not by it (that call would hold up the actor's other calls while the model loads)."""
    loaded: list[HashingEmbedder] = []

    def load(_text: object) -> HashingEmbedder:
        loaded.append(HashingEmbedder())
        return loaded[-1]

    monkeypatch.setattr(factories, "query_embedder", load)
    stage = factories.meta_index(Settings(sections={"index": {"lancedb_dir": str(tmp_path)}}))
    assert isinstance(stage, MetaIndexStage)
    assert len(loaded) == 1 and stage.embedder is loaded[0]
