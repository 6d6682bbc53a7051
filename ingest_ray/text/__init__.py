"""Text for search: section-aware chunking and sentence embeddings (offline, no torch needed)."""

from __future__ import annotations

from ingest_ray.text.artifacts import load_chunks, load_vectors, store_chunks, store_vectors
from ingest_ray.text.chunker import Chunk, Chunker
from ingest_ray.text.content import ContentItem
from ingest_ray.text.embedder import Embedder, TextEncoder, embedder_from_settings
from ingest_ray.text.errors import ArtifactMissingError, ContentFormatError, EmbeddingModelError
from ingest_ray.text.settings import DEFAULT_EMBEDDING_MODEL, TextSettings
from ingest_ray.text.tokenizer import ModelTokenizer, load_tokenizer

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "ArtifactMissingError",
    "Chunk",
    "Chunker",
    "ContentFormatError",
    "ContentItem",
    "Embedder",
    "EmbeddingModelError",
    "ModelTokenizer",
    "TextEncoder",
    "TextSettings",
    "embedder_from_settings",
    "load_chunks",
    "load_tokenizer",
    "load_vectors",
    "store_chunks",
    "store_vectors",
]
