from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest_ray.storage.blobs import FileBlobStore
from ingest_ray.text.artifacts import (
    get_json,
    load_chunks,
    load_vectors,
    put_json,
    store_chunks,
    store_vectors,
)
from ingest_ray.text.chunker import Chunk
from ingest_ray.text.errors import ArtifactMissingError, ContentFormatError


def test_chunks_round_trip_through_the_blob_store(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    chunks = [
        Chunk(
            chunk_id="c0000",
            text="x",
            page_start=1,
            page_end=2,
            section_path=("A", "B"),
            token_count=1,
        )
    ]
    digest = store_chunks(blobs, chunks)
    assert load_chunks(blobs, digest) == chunks
    assert store_chunks(blobs, chunks) == digest  # canonical encoding: same content, same blob


def test_put_json_matches_file_blob_store_encoding(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    value = {"b": [1, 2], "a": "ü"}
    assert put_json(blobs, value) == blobs.put_json(value)
    assert get_json(blobs, put_json(blobs, value), "doc") == value


def test_vectors_round_trip_as_little_endian_float32(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    vectors = np.arange(12, dtype=np.float64).reshape(3, 4)
    digest = store_vectors(blobs, vectors)  # type: ignore[arg-type]
    assert blobs.get(digest) == vectors.astype("<f4").tobytes()
    loaded = load_vectors(blobs, digest, 4)
    assert loaded.dtype == np.float32 and loaded.shape == (3, 4)
    np.testing.assert_array_equal(loaded, vectors)
    with pytest.raises(ContentFormatError):
        load_vectors(blobs, digest, 5)


def test_artifact_errors_are_permanent(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    with pytest.raises(ArtifactMissingError):
        load_chunks(blobs, "0" * 64)
    with pytest.raises(ContentFormatError):
        load_chunks(blobs, "not-a-digest")
    with pytest.raises(ContentFormatError):
        load_chunks(blobs, blobs.put(b"\xff not json"))
    with pytest.raises(ContentFormatError):
        load_chunks(blobs, blobs.put_json([{"chunk_id": "c0000"}]))
