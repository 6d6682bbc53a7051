"""Artifact storage: content-addressed blobs (PDFs, parsed content, chunks, vectors).

:func:`open_blob_store` builds the store a URL names: a local directory or shared mount
(:class:`FileBlobStore`) or S3-compatible object storage (:class:`~ingest_ray.storage.objects.
ObjectBlobStore`, which needs ``obstore``).
"""

from __future__ import annotations

from ingest_ray.storage.blobs import BlobStore, FileBlobStore
from ingest_ray.storage.errors import (
    ArtifactMissingError,
    BlobCorruptError,
    BlobStoreUnavailableError,
    BlobTooLargeError,
)
from ingest_ray.storage.factory import open_blob_store
from ingest_ray.storage.settings import StorageSettings

__all__ = [
    "ArtifactMissingError",
    "BlobCorruptError",
    "BlobStore",
    "BlobStoreUnavailableError",
    "BlobTooLargeError",
    "FileBlobStore",
    "StorageSettings",
    "open_blob_store",
]
