"""The search index: chunks with vectors and full text, hybrid search, entity mentions.

``base`` holds the contract (:class:`IndexSink`, the row and hit models); ``lancedb_sink``
(embedded, the default) and ``pgvector_sink`` (PostgreSQL) implement it; ``search`` has the
entry points the CLI uses; ``entities`` maps documents to ORCID/ROR/DOI/OpenAlex ids.
"""

from __future__ import annotations

from ingest_ray.index.base import (
    META_CHUNK_ID,
    Chunk,
    DocumentChunks,
    EntityHit,
    EntityMention,
    IndexSink,
    QueryEmbedder,
    SearchHit,
)
from ingest_ray.index.search import build_sink, run_entity_search, run_search
from ingest_ray.index.settings import IndexSettings

__all__ = [
    "META_CHUNK_ID",
    "Chunk",
    "DocumentChunks",
    "EntityHit",
    "EntityMention",
    "IndexSettings",
    "IndexSink",
    "QueryEmbedder",
    "SearchHit",
    "build_sink",
    "run_entity_search",
    "run_search",
]
