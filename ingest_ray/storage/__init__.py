"""Artifact storage: content-addressed blobs (PDFs, parsed content, chunks)."""

from __future__ import annotations

from ingest_ray.storage.blobs import BlobStore, FileBlobStore

__all__ = ["BlobStore", "FileBlobStore"]
