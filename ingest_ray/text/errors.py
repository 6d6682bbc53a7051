"""Errors of chunking and embedding, under the engine's retryable/permanent tree."""

from __future__ import annotations

from ingest_ray.errors import ConfigurationError, PermanentError


class EmbeddingModelError(ConfigurationError):
    """The embedding model (or its tokenizer) cannot be found or loaded; retrying will not help."""


class ArtifactMissingError(PermanentError):
    """An artifact an earlier stage reported (by sha256) is not in the blob store."""


class ContentFormatError(PermanentError):
    """A stored content list or chunk list is not in the expected shape."""
