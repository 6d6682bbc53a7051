"""The index contract: what is written (documents of chunks, entity mentions), what comes back
(search and entity hits), and the :class:`IndexSink` protocol every backend implements.

Writes are upserts keyed by ``(tenant_id, doc_key, chunk_id)`` (entity mentions by
``(tenant_id, doc_key, entity_id)``), so a replayed or duplicated delivery leaves exactly one
copy; writing a document again replaces its chunk set (stale chunks go), except the ``meta``
chunk, which only a metadata write replaces. The tenant is part of the key so two tenants that
ingest the same DOI never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from ingest_ray.index.errors import IndexSchemaError

#: the chunk id of a document's title + abstract, written right after its metadata
META_CHUNK_ID: Final = "meta"

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document's text, as the chunk stage stored it."""

    chunk_id: str
    text: str
    page_start: int | None = None
    page_end: int | None = None
    section_path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class DocumentChunks:
    """A document's chunks and their vectors (row ``i`` of ``vectors`` embeds ``chunks[i]``).

    ``replace=True`` removes the document's other chunks (not ``meta``) in the same write.
    """

    tenant_id: str
    doc_key: str
    chunks: tuple[Chunk, ...]
    vectors: FloatArray
    title: str | None = None
    doi: str | None = None
    job_id: str | None = None
    replace: bool = True

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.chunks):
            raise IndexSchemaError(
                f"{self.doc_key}: {len(self.chunks)} chunks but vectors of shape "
                f"{self.vectors.shape}"
            )
        ids = [chunk.chunk_id for chunk in self.chunks]
        if len(set(ids)) != len(ids):
            raise IndexSchemaError(f"{self.doc_key}: duplicate chunk ids")


class SearchHit(BaseModel):
    """One chunk found by hybrid search; ``score`` is its reciprocal-rank-fusion score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    doc_key: str
    chunk_id: str
    title: str | None = None
    doi: str | None = None
    page_start: int | None = None
    page_end: int | None = None
    section_path: list[str] = []
    snippet: str = ""
    score: float
    #: 1-based rank in each leg, None when the leg did not return the chunk
    vector_rank: int | None = None
    text_rank: int | None = None


@dataclass(frozen=True, slots=True)
class EntityMention:
    """A document's link to an entity: ``orcid:…``, ``ror:…``, ``doi:…``, ``openalex:…``."""

    entity_id: str
    entity_type: str
    label: str | None = None


class EntityHit(BaseModel):
    """A document that mentions an entity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entity_id: str
    entity_type: str
    label: str | None = None
    tenant_id: str
    doc_key: str
    title: str | None = None
    doi: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """A row one search leg returned, before fusion (backends build these)."""

    tenant_id: str
    doc_key: str
    chunk_id: str
    text: str
    title: str | None
    doi: str | None
    page_start: int | None
    page_end: int | None
    section_path: tuple[str, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str, str]:
        """The row's identity in the index."""
        return (self.tenant_id, self.doc_key, self.chunk_id)


@runtime_checkable
class QueryEmbedder(Protocol):
    """What the index needs of an embedder (engineer D's ``Embedder`` satisfies it)."""

    model_name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Shape ``(len(texts), dim)``, float32, L2-normalised."""
        ...


@runtime_checkable
class IndexSink(Protocol):
    """A searchable store of chunks and entity mentions. Methods are blocking; call them from
    a worker thread (``asyncio.to_thread``) in async code."""

    backend: str

    def upsert(self, docs: Sequence[DocumentChunks]) -> int:
        """Write the documents' chunks (replacing stale ones); return the rows written."""
        ...

    def delete_document(self, tenant_id: str, doc_key: str) -> int:
        """Remove every chunk and mention of a document; return the chunks removed."""
        ...

    def count(self, *, tenant_id: str | None = None, doc_key: str | None = None) -> int:
        """How many chunks are stored (optionally of one tenant / document)."""
        ...

    def search(
        self,
        query_text: str,
        query_vector: FloatArray | None,
        k: int = 10,
        tenant_id: str | None = None,
    ) -> list[SearchHit]:
        """Hybrid search: vector and full-text legs fused by reciprocal rank."""
        ...

    def upsert_mentions(
        self, tenant_id: str, doc_key: str, mentions: Sequence[EntityMention]
    ) -> int:
        """Replace a document's entity mentions with ``mentions``; return how many are stored."""
        ...

    def find_by_entity(
        self, entity_id: str, tenant_id: str | None = None, limit: int = 100
    ) -> list[EntityHit]:
        """Documents that mention ``entity_id`` (already normalised)."""
        ...

    def optimize(self) -> None:
        """Housekeeping (compaction, index refresh); cheap to skip."""
        ...

    def close(self) -> None:
        """Release connections and handles."""
        ...
