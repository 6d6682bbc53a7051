"""Reading and writing the text artifacts in the blob store: content lists, chunk lists, vectors.

Formats (stable; other stages read them):

- chunk list: a JSON list of ``{"chunk_id", "text", "page_start", "page_end", "section_path",
  "token_count"}`` in document order, ids ``c0000``, ``c0001``, ...;
- vectors: the rows of a float32 matrix as little-endian bytes (``ndarray.astype("<f4")
  .tobytes()``), row ``i`` embedding chunk ``i``; the width is the ``dim`` of the embed output.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import ValidationError

from ingest_ray.storage.blobs import BlobStore, canonical_json
from ingest_ray.text.bert import FloatArray
from ingest_ray.text.chunker import Chunk
from ingest_ray.text.errors import ArtifactMissingError, ContentFormatError


def put_json(blobs: BlobStore, value: Any) -> str:
    """Store a JSON document in the canonical encoding (equal values share one blob)."""
    return blobs.put(canonical_json(value))


def get_bytes(blobs: BlobStore, digest: str, what: str) -> bytes:
    """The blob ``digest``; a missing or malformed reference is a permanent error."""
    try:
        return blobs.get(digest)
    except ArtifactMissingError:
        raise ArtifactMissingError(f"{what} {digest} is not in the blob store") from None
    except ValueError as exc:
        raise ContentFormatError(f"{what} reference is not a sha256: {exc}") from exc


def get_json(blobs: BlobStore, digest: str, what: str) -> Any:
    """A JSON blob, or a permanent error saying what was expected."""
    try:
        return json.loads(get_bytes(blobs, digest, what))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContentFormatError(f"{what} {digest} is not JSON: {exc}") from exc


def store_chunks(blobs: BlobStore, chunks: list[Chunk]) -> str:
    """Store a chunk list; return its sha256."""
    return put_json(blobs, [chunk.model_dump(mode="json") for chunk in chunks])


def load_chunks(blobs: BlobStore, digest: str) -> list[Chunk]:
    """Read a chunk list stored by :func:`store_chunks`."""
    value = get_json(blobs, digest, "chunk list")
    if not isinstance(value, list):
        raise ContentFormatError(f"chunk list {digest} is not a JSON list")
    try:
        return [Chunk.model_validate(item) for item in value]
    except ValidationError as exc:
        raise ContentFormatError(f"chunk list {digest}: {exc.errors()[0]['msg']}") from exc


def store_vectors(blobs: BlobStore, vectors: FloatArray) -> str:
    """Store a float32 matrix as little-endian bytes; return its sha256."""
    return blobs.put(np.ascontiguousarray(vectors, dtype="<f4").tobytes())


def load_vectors(blobs: BlobStore, digest: str, dim: int) -> FloatArray:
    """Read vectors stored by :func:`store_vectors` as a ``(count, dim)`` float32 matrix."""
    raw = get_bytes(blobs, digest, "embeddings")
    if dim <= 0 or len(raw) % (4 * dim):
        raise ContentFormatError(
            f"embeddings {digest}: {len(raw)} bytes is not a multiple of {dim}"
        )
    vectors: FloatArray = np.frombuffer(raw, dtype="<f4").reshape(-1, dim).astype(np.float32)
    return vectors
