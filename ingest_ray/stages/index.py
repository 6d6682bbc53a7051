"""The ``meta_index`` and ``index`` stages: write a document into the search index.

``meta_index`` runs right after ``metadata`` in the two-phase pipeline and indexes the title and
abstract as chunk ``meta``, so a document is searchable before its PDF is fetched and parsed.
``index`` reads the chunk list and the vectors the ``chunk`` and ``embed`` stages stored in the
blob store and upserts them, replacing the document's earlier chunks (``meta`` stays). Both take
batches: one model call and one index write serve many jobs; if the batch write fails, each
document is written on its own, so one bad document fails alone. Neither writes for a job that was
cancelled meanwhile, and both take a cancelled job's rows back (``compensate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest_ray.errors import IngestError
from ingest_ray.events import normalize_doi
from ingest_ray.index.base import META_CHUNK_ID, Chunk, DocumentChunks, IndexSink, QueryEmbedder
from ingest_ray.index.errors import ArtifactMissingError, IndexSchemaError
from ingest_ray.index.search import build_sink, query_embedder
from ingest_ray.index.settings import IndexSettings
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.storage.blobs import BlobStore
from ingest_ray.text.settings import TextSettings


class StoredChunk(BaseModel):
    """One entry of the chunk stage's stored chunk list (fields we do not use are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    chunk_id: str = Field(min_length=1)
    text: str
    page_start: int | None = None
    page_end: int | None = None
    section_path: list[str] = Field(default_factory=list)


def work_of(item: StageInput) -> Mapping[str, Any]:
    """The metadata stage's ``work`` (empty when the stage did not run or found nothing)."""
    work = item.outputs.get("metadata", {}).get("work")
    return work if isinstance(work, Mapping) else {}


def title_and_doi(item: StageInput) -> tuple[str | None, str | None]:
    """The document's title (metadata, else the first heading the chunk stage found, else the
    request's ``title``) and normalised DOI."""
    work = work_of(item)
    heading = item.outputs.get("chunk", {}).get("title")
    title = work.get("title") or heading or item.metadata.get("title")
    doi = work.get("doi")
    return (str(title) if title else None, normalize_doi(str(doi)) if doi else None)


def _blob_ref(item: StageInput, stage: str, field: str) -> str:
    ref = item.outputs.get(stage, {}).get(field)
    if not isinstance(ref, str) or not ref:
        raise ArtifactMissingError(
            f"no {stage}.{field} in the job's outputs", job_id=item.job_id, stage=item.stage
        )
    return ref


def _read_blob(blobs: BlobStore, digest: str, item: StageInput) -> bytes:
    try:
        return blobs.get(digest)
    except (KeyError, ValueError) as exc:
        raise ArtifactMissingError(
            f"blob {digest!r} is not in the store", job_id=item.job_id, stage=item.stage
        ) from exc


def load_chunks(blobs: BlobStore, item: StageInput) -> list[StoredChunk]:
    """The chunk list the ``chunk`` stage stored for this job."""
    raw = _read_blob(blobs, _blob_ref(item, "chunk", "chunks_sha256"), item)
    try:
        entries = json.loads(raw)
        return [StoredChunk.model_validate(entry) for entry in entries]
    except (ValueError, TypeError, ValidationError) as exc:
        raise IndexSchemaError(
            f"chunk list is not valid: {exc}", job_id=item.job_id, stage=item.stage
        ) from exc


async def write_isolated(
    sink: IndexSink,
    docs: Mapping[int, DocumentChunks],
    items: Sequence[StageInput],
    results: list[StageOutput | IngestError],
) -> None:
    """Upsert ``docs`` in one write, skipping cancelled jobs; if the write fails, write each on
    its own so only the document at fault fails (its error replaces its result)."""
    live = {}
    for i, doc in docs.items():
        try:
            items[i].check_cancelled()
            live[i] = doc
        except IngestError as exc:
            results[i] = exc
    if not live:
        return
    with contextlib.suppress(Exception):  # if one is at fault, find which below
        await asyncio.to_thread(sink.upsert, list(live.values()))
        return
    for i, doc in live.items():
        try:
            await asyncio.to_thread(sink.upsert, [doc])
        except Exception as exc:
            results[i] = _as_ingest_error(exc, items[i])


def _as_ingest_error(exc: Exception, item: StageInput) -> IngestError:
    if isinstance(exc, IngestError):
        return exc
    return IndexSchemaError(
        f"the index refused this document: {type(exc).__name__}: {exc}",
        job_id=item.job_id,
        stage=item.stage,
    )


async def delete_documents(sink: IndexSink, items: Sequence[StageInput]) -> None:
    """Remove every row of these jobs' documents (a cancelled job leaves nothing behind)."""
    for item in items:
        await asyncio.to_thread(sink.delete_document, item.tenant_id, item.doc_key)


def load_vectors(blobs: BlobStore, item: StageInput, count: int, dim: int) -> np.ndarray[Any, Any]:
    """The ``embed`` stage's float32 little-endian matrix, checked against ``(count, dim)``."""
    embed = item.outputs.get("embed", {})
    raw = _read_blob(blobs, _blob_ref(item, "embed", "embeddings_sha256"), item)
    if embed.get("dim") not in (None, dim) or len(raw) != count * dim * 4:
        raise IndexSchemaError(
            f"embeddings of {len(raw)} bytes (dim {embed.get('dim')}) do not fit "
            f"{count} chunks of dim {dim}",
            job_id=item.job_id,
            stage=item.stage,
        )
    return np.frombuffer(raw, dtype="<f4").reshape(count, dim).astype(np.float32)


class MetaIndexStage(BaseStage):
    """Index title + abstract as chunk ``meta`` right after metadata."""

    name: ClassVar[str] = "meta_index"
    batch_size: ClassVar[int] = 32

    def __init__(
        self,
        settings: IndexSettings,
        text_settings: TextSettings | None = None,
        *,
        embedder: QueryEmbedder | None = None,
        sink: IndexSink | None = None,
    ) -> None:
        self.settings = settings
        self.text_settings = text_settings or TextSettings()
        self._embedder = embedder
        self.sink = sink or build_sink(settings)

    @property
    def embedder(self) -> QueryEmbedder:
        """The embedder, loaded on first use (once per process)."""
        if self._embedder is None:
            self._embedder = query_embedder(self.text_settings)
        return self._embedder

    async def run(self, item: StageInput) -> StageOutput:
        """Index one document's title and abstract."""
        result = (await self.run_batch([item]))[0]
        if isinstance(result, IngestError):
            raise result
        return result

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Embed every indexable item in one model call, write them in one upsert."""
        texts = {i: _meta_text(item) for i, item in enumerate(items)}
        todo = {i: text for i, text in texts.items() if text}
        results: list[StageOutput | IngestError] = [
            StageOutput(data={"indexed": 0, "sink": self.sink.backend, "note": _NOTHING})
            for _ in items
        ]
        if not todo:
            return results
        try:
            vectors = await asyncio.to_thread(self.embedder.embed, list(todo.values()))
        except IngestError as exc:
            for i in todo:
                results[i] = exc
            return results
        data = {"indexed": 1, "sink": self.sink.backend, "chunk_id": META_CHUNK_ID}
        docs = {}
        for n, (i, text) in enumerate(todo.items()):
            docs[i] = self._document(items[i], text, vectors[n])
            results[i] = StageOutput(data={**data, "model": self.embedder.model_name})
        await write_isolated(self.sink, docs, items, results)
        return results

    async def compensate(self, items: Sequence[StageInput]) -> None:
        """Remove the rows of cancelled jobs."""
        await delete_documents(self.sink, items)

    def _document(
        self, item: StageInput, text: str, vector: np.ndarray[Any, Any]
    ) -> DocumentChunks:
        title, doi = title_and_doi(item)
        return DocumentChunks(
            tenant_id=item.tenant_id,
            doc_key=item.doc_key,
            chunks=(Chunk(META_CHUNK_ID, text, section_path=("title and abstract",)),),
            vectors=np.asarray(vector, dtype=np.float32).reshape(1, -1),
            title=title,
            doi=doi,
            job_id=item.job_id,
            replace=False,
        )

    async def aclose(self) -> None:
        """Close the index connection."""
        await asyncio.to_thread(self.sink.close)


_NOTHING = "no title or abstract: nothing indexed before full text"


def _meta_text(item: StageInput) -> str:
    work = work_of(item)
    title, _ = title_and_doi(item)
    parts = [title, work.get("abstract")]
    return "\n\n".join(str(part).strip() for part in parts if part and str(part).strip())


class IndexStage(BaseStage):
    """Upsert a document's chunks and vectors, replacing its earlier chunks."""

    name: ClassVar[str] = "index"
    batch_size: ClassVar[int] = 16

    def __init__(
        self, settings: IndexSettings, blobs: BlobStore, *, sink: IndexSink | None = None
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.sink = sink or build_sink(settings)

    async def run(self, item: StageInput) -> StageOutput:
        """Index one document."""
        result = (await self.run_batch([item]))[0]
        if isinstance(result, IngestError):
            raise result
        return result

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Load every item's artifacts (a bad one fails alone), then write all in one upsert."""
        results: list[StageOutput | IngestError] = []
        docs: dict[int, DocumentChunks] = {}
        for i, item in enumerate(items):
            try:
                docs[i] = await asyncio.to_thread(self._document, item)
            except IngestError as exc:
                results.append(exc)
                continue
            results.append(
                StageOutput(data={"indexed": len(docs[i].chunks), "sink": self.sink.backend})
            )
        await write_isolated(self.sink, docs, items, results)
        return results

    async def compensate(self, items: Sequence[StageInput]) -> None:
        """Remove the rows of cancelled jobs."""
        await delete_documents(self.sink, items)

    def _document(self, item: StageInput) -> DocumentChunks:
        chunks = load_chunks(self.blobs, item)
        vectors = load_vectors(self.blobs, item, len(chunks), self.settings.embedding_dim)
        title, doi = title_and_doi(item)
        return DocumentChunks(
            tenant_id=item.tenant_id,
            doc_key=item.doc_key,
            chunks=tuple(
                Chunk(c.chunk_id, c.text, c.page_start, c.page_end, tuple(c.section_path))
                for c in chunks
            ),
            vectors=vectors,
            title=title,
            doi=doi,
            job_id=item.job_id,
            replace=True,
        )

    async def aclose(self) -> None:
        """Close the index connection."""
        await asyncio.to_thread(self.sink.close)
