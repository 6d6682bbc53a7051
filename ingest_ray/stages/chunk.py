"""The ``chunk`` stage: a document's text as section-aware, token-bounded chunks.

Text comes from, in order: the mineru stage's content list (``outputs["mineru"]
["content_sha256"]``), the request's TEXT source, or the work's title and abstract (from the
metadata stage, else the request's metadata). The chunk list goes to the blob store (format in
:mod:`ingest_ray.text.artifacts`); the output is
``{"chunks_sha256", "chunk_count", "text_source": "mineru"|"text"|"abstract"}``, plus ``"title"``
(the content list's first heading) when the metadata found no title. A document with no text at
all gives an empty chunk list, not an error: its metadata may still be indexed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from ingest_ray.documents import clean_title, first_heading
from ingest_ray.events import SourceKind
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.storage.blobs import BlobStore
from ingest_ray.text.artifacts import get_json, store_chunks
from ingest_ray.text.chunker import Chunk, Chunker
from ingest_ray.text.settings import TextSettings


def _text(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value.strip() else None


class ChunkStage(BaseStage):
    """Cuts a job's text into chunks measured by the embedding model's tokenizer."""

    name: ClassVar[str] = "chunk"
    batch_size: ClassVar[int] = 1

    def __init__(
        self, settings: TextSettings, blobs: BlobStore, *, chunker: Chunker | None = None
    ) -> None:
        self._blobs = blobs
        self._chunker = chunker or Chunker.from_settings(settings)

    async def run(self, item: StageInput) -> StageOutput:
        """Chunk the job's text and store the chunk list."""
        return await asyncio.to_thread(self._run, item)

    def _run(self, item: StageInput) -> StageOutput:
        chunks, text_source, heading = self._chunks(item)
        digest = store_chunks(self._blobs, chunks)
        data: dict[str, Any] = {
            "chunks_sha256": digest, "chunk_count": len(chunks), "text_source": text_source,
        }  # fmt: skip
        work = item.outputs.get("metadata", {}).get("work") or {}
        if heading and not clean_title(work.get("title")):
            data["title"] = heading
        return StageOutput(data=data)

    def chunks_for(self, item: StageInput) -> tuple[list[Chunk], str]:
        """The chunks of ``item`` and which text they came from."""
        chunks, text_source, _ = self._chunks(item)
        return chunks, text_source

    def _chunks(self, item: StageInput) -> tuple[list[Chunk], str, str | None]:
        content_sha = item.outputs.get("mineru", {}).get("content_sha256")
        if isinstance(content_sha, str) and content_sha:
            content = get_json(self._blobs, content_sha, "content list")
            chunks = self._chunker.chunk_content_list(content)  # raises unless it is a list
            heading = first_heading(c for c in content if isinstance(c, dict))
            return chunks, "mineru", heading
        if item.source.kind is SourceKind.TEXT:
            return self._chunker.chunk_text(item.source.value), "text", None
        work = item.outputs.get("metadata", {}).get("work") or {}
        title = _text(work, "title") or _text(item.metadata, "title")
        abstract = _text(work, "abstract") or _text(item.metadata, "abstract")
        return self._chunker.chunk_abstract(title, abstract), "abstract", None
