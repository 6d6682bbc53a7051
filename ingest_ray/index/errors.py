"""Errors of the index: a backend away is retryable, a broken input or schema is not."""

from __future__ import annotations

from ingest_ray.errors import PermanentError, RetryableError
from ingest_ray.storage.errors import ArtifactMissingError

__all__ = [
    "ArtifactMissingError",
    "IndexSchemaError",
    "IndexUnavailableError",
    "InvalidEntityError",
]


class IndexUnavailableError(RetryableError):
    """The index backend (PostgreSQL, the LanceDB directory) did not answer or refused a write."""


class IndexSchemaError(PermanentError):
    """Data does not fit the index: wrong vector dimension, mismatched lengths, bad settings."""


class InvalidEntityError(PermanentError):
    """An entity id that is neither an ORCID, a ROR id, a DOI nor an OpenAlex id."""
