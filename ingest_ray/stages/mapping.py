"""The ``mapping`` stage: link an indexed document to its entities.

Authors (ORCID), institutions (ROR), topics and referenced works come from the metadata stage's
``work``; DOIs cited in the text are found in the stored chunks. The mentions are written to the
index backend, replacing the document's earlier ones, so a replay leaves the same set and
:func:`~ingest_ray.index.search.run_entity_search` finds the document by any of them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar

from ingest_ray.events import SourceKind
from ingest_ray.index.base import EntityMention, IndexSink
from ingest_ray.index.entities import map_document
from ingest_ray.index.search import build_sink
from ingest_ray.index.settings import IndexSettings
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.stages.index import load_chunks, work_of
from ingest_ray.storage.blobs import BlobStore


class MappingStage(BaseStage):
    """Store a document's entity mentions (idempotent: the set is replaced, never appended)."""

    name: ClassVar[str] = "mapping"
    batch_size: ClassVar[int] = 1

    def __init__(
        self,
        settings: IndexSettings,
        blobs: BlobStore | None = None,
        *,
        sink: IndexSink | None = None,
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.sink = sink or build_sink(settings)

    async def run(self, item: StageInput) -> StageOutput:
        """Map one document; data says how many entities of each type were stored."""
        mentions = await asyncio.to_thread(self._mentions, item)
        stored = await asyncio.to_thread(
            self.sink.upsert_mentions, item.tenant_id, item.doc_key, mentions
        )
        by_type = Counter(mention.entity_type for mention in mentions)
        return StageOutput(
            data={
                "entities": stored,
                "by_type": dict(sorted(by_type.items())),
                "sink": self.sink.backend,
            }
        )

    def _mentions(self, item: StageInput) -> list[EntityMention]:
        work = work_of(item) or _request_work(item)
        return map_document(work, self._texts(item))

    def _texts(self, item: StageInput) -> list[str]:
        if self.blobs is not None and item.outputs.get("chunk", {}).get("chunks_sha256"):
            return [chunk.text for chunk in load_chunks(self.blobs, item)]
        if item.source.kind is SourceKind.TEXT:
            return [item.source.value]
        return []

    async def aclose(self) -> None:
        """Close the index connection."""
        await asyncio.to_thread(self.sink.close)


def _request_work(item: StageInput) -> dict[str, Any]:
    """A ``work`` the mapping request carried in its metadata (the MappingWorker's input)."""
    work = item.metadata.get("work")
    return work if isinstance(work, dict) else {}
