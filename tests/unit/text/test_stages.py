"""The chunk and embed stages end to end through a FileBlobStore (no services, no network)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest_ray.errors import IngestError
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.stages.base import Stage, StageInput, StageOutput
from ingest_ray.stages.chunk import ChunkStage
from ingest_ray.stages.embed import EmbedStage
from ingest_ray.storage.blobs import FileBlobStore
from ingest_ray.text import embedder as embedder_module
from ingest_ray.text.artifacts import load_chunks, load_vectors
from ingest_ray.text.embedder import Embedder, TextEncoder
from ingest_ray.text.errors import ArtifactMissingError, ContentFormatError
from ingest_ray.text.settings import TextSettings

CONTENT = [
    {"type": "text", "text": "Enzyme Kinetics Revisited", "text_level": 1, "page_idx": 0},
    {"type": "text", "text": "Abstract. We revisit Michaelis-Menten kinetics.", "page_idx": 0},
    {"type": "text", "text": "1 Methods", "text_level": 1, "page_idx": 1},
    {"type": "text", "text": "Rates were measured at 25 degrees. " * 12, "page_idx": 1},
    {"type": "image", "img_path": "images/f1.jpg", "page_idx": 2},
    {
        "type": "table",
        "table_body": "<table><tr><td>Km</td><td>2.1</td></tr></table>",
        "page_idx": 2,
    },
]


def _input(
    source: DocumentSource,
    outputs: dict[str, dict[str, Any]] | None = None,
    *,
    stage: str = "chunk",
    job: str = "job-1",
    metadata: dict[str, Any] | None = None,
) -> StageInput:
    return StageInput(
        job_id=job,
        tenant_id="t1",
        doc_key=source.doc_key(),
        pipeline="two_phase",
        stage=stage,
        attempt=1,
        source=source,
        metadata=metadata or {},
        outputs=outputs or {},
    )


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def chunk_stage(text_settings: TextSettings, blobs: FileBlobStore) -> ChunkStage:
    return ChunkStage(text_settings, blobs)


@pytest.fixture
def embed_stage(
    text_settings: TextSettings, blobs: FileBlobStore, embedder: Embedder
) -> EmbedStage:
    return EmbedStage(text_settings, blobs, embedder=embedder)


def _pdf_job(blobs: FileBlobStore, job: str = "job-1") -> StageInput:
    content_sha = blobs.put_json(CONTENT)
    return _input(
        DocumentSource(kind=SourceKind.PDF_PATH, value=f"/data/{job}.pdf"),
        {"mineru": {"content_sha256": content_sha, "pages": 3, "items": 6, "parser": "pdfium"}},
        job=job,
    )


def _embed_input(item: StageInput, chunk_output: StageOutput) -> StageInput:
    outputs = {**item.outputs, "chunk": chunk_output.data}
    return _input(item.source, outputs, stage="embed", job=item.job_id)


def test_stages_implement_the_stage_protocol(
    chunk_stage: ChunkStage, embed_stage: EmbedStage
) -> None:
    assert isinstance(chunk_stage, Stage) and isinstance(embed_stage, Stage)
    assert (chunk_stage.name, embed_stage.name) == ("chunk", "embed")
    assert embed_stage.batch_size > 1


def test_chunk_stage_chunks_the_mineru_content_list(
    chunk_stage: ChunkStage, blobs: FileBlobStore
) -> None:
    out = asyncio.run(chunk_stage.run(_pdf_job(blobs)))
    assert out.data["text_source"] == "mineru"
    stored = json.loads(blobs.get(out.data["chunks_sha256"]))
    assert len(stored) == out.data["chunk_count"] >= 2
    assert set(stored[0]) == {
        "chunk_id",
        "text",
        "page_start",
        "page_end",
        "section_path",
        "token_count",
    }
    assert stored[0]["chunk_id"] == "c0000"
    assert stored[0]["section_path"] == ["Enzyme Kinetics Revisited"]
    assert stored[0]["page_start"] == 1
    assert stored[-1]["section_path"] == ["1 Methods"]
    assert stored[-1]["page_end"] == 3
    assert "Km | 2.1" in stored[-1]["text"]
    json.dumps(out.data)  # small JSON for the ledger


def test_chunk_stage_is_idempotent(chunk_stage: ChunkStage, blobs: FileBlobStore) -> None:
    item = _pdf_job(blobs)
    first, second = asyncio.run(chunk_stage.run(item)), asyncio.run(chunk_stage.run(item))
    assert first.data == second.data


def test_chunk_stage_uses_the_text_source(chunk_stage: ChunkStage, blobs: FileBlobStore) -> None:
    item = _input(DocumentSource(kind=SourceKind.TEXT, value="# Notes\n\nPlain text body."))
    out = asyncio.run(chunk_stage.run(item))
    chunks = load_chunks(blobs, out.data["chunks_sha256"])
    assert out.data["text_source"] == "text"
    assert [(c.text, c.section_path, c.page_start) for c in chunks] == [
        ("Notes\n\nPlain text body.", ("Notes",), None)
    ]


def test_chunk_stage_falls_back_to_title_and_abstract(
    chunk_stage: ChunkStage, blobs: FileBlobStore
) -> None:
    work = {"title": "A Study", "abstract": "We found a thing.", "doi": "10.1/x"}
    item = _input(DocumentSource(kind=SourceKind.DOI, value="10.1/x"), {"metadata": {"work": work}})
    out = asyncio.run(chunk_stage.run(item))
    chunks = load_chunks(blobs, out.data["chunks_sha256"])
    assert out.data["text_source"] == "abstract"
    assert [c.text for c in chunks] == ["A Study\n\nWe found a thing."]


def test_chunk_stage_title_from_request_metadata(
    chunk_stage: ChunkStage, blobs: FileBlobStore
) -> None:
    item = _input(
        DocumentSource(kind=SourceKind.PDF_URL, value="https://example.org/a.pdf"),
        {"metadata": {"work": {"title": None, "abstract": None}}},
        metadata={"title": "User Title"},
    )
    chunks = load_chunks(blobs, asyncio.run(chunk_stage.run(item)).data["chunks_sha256"])
    assert [c.text for c in chunks] == ["User Title"]


def test_chunk_stage_no_text_gives_empty_chunk_list(
    chunk_stage: ChunkStage, blobs: FileBlobStore
) -> None:
    item = _input(DocumentSource(kind=SourceKind.DOI, value="10.1/y"), {"metadata": {"work": {}}})
    out = asyncio.run(chunk_stage.run(item))
    assert out.data["chunk_count"] == 0
    assert load_chunks(blobs, out.data["chunks_sha256"]) == []


def test_chunk_stage_missing_content_blob_is_permanent(chunk_stage: ChunkStage) -> None:
    item = _input(
        DocumentSource(kind=SourceKind.PDF_PATH, value="/x.pdf"),
        {"mineru": {"content_sha256": "ab" * 32}},
    )
    with pytest.raises(ArtifactMissingError) as info:
        asyncio.run(chunk_stage.run(item))
    assert info.value.retryable is False


def test_chunk_stage_malformed_content_list_is_permanent(
    chunk_stage: ChunkStage, blobs: FileBlobStore
) -> None:
    digest = blobs.put_json({"not": "a list"})
    item = _input(
        DocumentSource(kind=SourceKind.PDF_PATH, value="/x.pdf"),
        {"mineru": {"content_sha256": digest}},
    )
    with pytest.raises(ContentFormatError):
        asyncio.run(chunk_stage.run(item))


def test_embed_stage_embeds_stored_chunks(
    chunk_stage: ChunkStage, embed_stage: EmbedStage, blobs: FileBlobStore, embedder: Embedder
) -> None:
    item = _pdf_job(blobs)
    chunked = asyncio.run(chunk_stage.run(item))
    out = asyncio.run(embed_stage.run(_embed_input(item, chunked)))
    assert set(out.data) == {"embeddings_sha256", "model", "dim", "count"}
    assert (out.data["model"], out.data["dim"]) == ("all-MiniLM-L6-v2", 384)
    assert out.data["count"] == chunked.data["chunk_count"]
    raw = blobs.get(out.data["embeddings_sha256"])
    assert len(raw) == out.data["count"] * 384 * 4
    vectors = load_vectors(blobs, out.data["embeddings_sha256"], 384)
    chunks = load_chunks(blobs, chunked.data["chunks_sha256"])
    np.testing.assert_allclose(vectors, embedder.embed([c.text for c in chunks]), atol=1e-6)
    np.testing.assert_array_equal(vectors, np.frombuffer(raw, dtype="<f4").reshape(-1, 384))


def test_embed_stage_run_batch_embeds_many_jobs_in_one_call(
    chunk_stage: ChunkStage, text_settings: TextSettings, blobs: FileBlobStore, embedder: Embedder
) -> None:
    calls: list[int] = []

    class Spy:
        dim, max_seq_length = embedder.dim, embedder.max_seq_length

        def encode(self, texts: Any, batch_size: int) -> Any:
            calls.append(len(texts))
            return embedder.encoder.encode(texts, batch_size)

    stage = EmbedStage(text_settings, blobs, embedder=Embedder("all-MiniLM-L6-v2", Spy()))
    jobs = [
        _pdf_job(blobs, "job-a"),
        _input(
            DocumentSource(kind=SourceKind.TEXT, value="Short text about ribosomes."), job="job-b"
        ),
        _input(
            DocumentSource(kind=SourceKind.DOI, value="10.1/z"),
            {"metadata": {"work": {}}},
            job="job-c",
        ),  # no text: zero chunks
    ]
    inputs = [_embed_input(job, asyncio.run(chunk_stage.run(job))) for job in jobs]
    results = asyncio.run(stage.run_batch(inputs))
    assert len(calls) == 1 and calls[0] == sum(i.outputs["chunk"]["chunk_count"] for i in inputs)
    for item, result in zip(inputs, results, strict=True):
        assert isinstance(result, StageOutput)
        assert result.data["count"] == item.outputs["chunk"]["chunk_count"]
        alone = asyncio.run(stage.run(item))  # the same job embedded on its own
        np.testing.assert_allclose(
            load_vectors(blobs, result.data["embeddings_sha256"], 384),
            load_vectors(blobs, alone.data["embeddings_sha256"], 384),
            atol=1e-5,
        )
    assert results[2].data["count"] == 0  # type: ignore[union-attr]


def test_embed_stage_bad_job_fails_alone(
    chunk_stage: ChunkStage, embed_stage: EmbedStage, blobs: FileBlobStore
) -> None:
    good = _pdf_job(blobs)
    good_input = _embed_input(good, asyncio.run(chunk_stage.run(good)))
    missing = _input(
        good.source, {"chunk": {"chunks_sha256": "cd" * 32}}, stage="embed", job="job-missing"
    )
    not_chunked = _input(good.source, {}, stage="embed", job="job-unchunked")
    results = asyncio.run(embed_stage.run_batch([missing, good_input, not_chunked]))
    assert isinstance(results[1], StageOutput)
    for result, job in ((results[0], "job-missing"), (results[2], "job-unchunked")):
        assert isinstance(result, ArtifactMissingError)
        assert (result.job_id, result.stage, result.retryable) == (job, "embed", False)
    with pytest.raises(IngestError):
        asyncio.run(embed_stage.run(missing))


def test_embed_stage_loads_the_model_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
    text_settings: TextSettings,
    blobs: FileBlobStore,
    embedder: Embedder,
    chunk_stage: ChunkStage,
) -> None:
    loads: list[TextSettings] = []

    def counting_loader(settings: TextSettings) -> TextEncoder:
        loads.append(settings)
        return embedder.encoder

    monkeypatch.setattr(embedder_module, "_CACHE", {})
    monkeypatch.setattr(embedder_module, "load_encoder", counting_loader)
    stages = [EmbedStage(text_settings, blobs) for _ in range(2)]  # two stages, one actor
    item = _pdf_job(blobs)
    embed_input = _embed_input(item, asyncio.run(chunk_stage.run(item)))
    for stage in stages * 2:
        asyncio.run(stage.run(embed_input))
    assert len(loads) == 1


def test_chunk_stage_titles_the_document_by_its_first_heading(
    chunk_stage: ChunkStage, blobs: FileBlobStore
) -> None:
    out = asyncio.run(chunk_stage.run(_pdf_job(blobs)))
    assert out.data["title"] == "Enzyme Kinetics Revisited"
    titled = _pdf_job(blobs)
    titled.outputs["metadata"] = {"work": {"title": "From the info dictionary"}}
    assert "title" not in asyncio.run(chunk_stage.run(titled)).data  # metadata's title wins
