"""Errors of chunking and embedding, under the engine's retryable/permanent tree."""

from __future__ import annotations

from ingest_ray.errors import ConfigurationError, PermanentError
from ingest_ray.storage.errors import ArtifactMissingError

__all__ = ["ArtifactMissingError", "ContentFormatError", "EmbeddingModelError"]


class EmbeddingModelError(ConfigurationError):
    """The embedding model (or its tokenizer) cannot be found or loaded; retrying will not help."""


class ContentFormatError(PermanentError):
    """A stored content list or chunk list is not in the expected shape."""
