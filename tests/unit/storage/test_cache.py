"""The node-local blob cache: whole, verified copies only, bounded by least recent use."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from ingest_ray.storage import BlobCorruptError, BlobTooLargeError
from ingest_ray.storage.cache import BlobCache


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cache_fill_writes_a_verified_copy(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=1 << 20)
    data = b"abc" * 1000
    assert cache.lookup(_digest(data)) is None
    path = cache.fill(_digest(data), [data[:10], data[10:]], limit=1 << 20)
    assert path.read_bytes() == data and cache.lookup(_digest(data)) == path


@pytest.mark.parametrize(
    ("chunks", "limit", "error"),
    [
        ([b"wrong ", b"bytes"], 1000, BlobCorruptError),
        ([b"x" * 600, b"x" * 600], 1000, BlobTooLargeError),
    ],
)
def test_cache_fill_leaves_nothing_when_the_copy_is_bad(
    tmp_path: Path, chunks: list[bytes], limit: int, error: type[Exception]
) -> None:
    cache = BlobCache(tmp_path, max_bytes=1 << 20)
    digest = _digest(b"the real thing")
    with pytest.raises(error):
        cache.fill(digest, chunks, limit=limit)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_cache_trim_evicts_least_recently_used_but_not_fresh_entries(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=2500, min_age_s=60)
    blobs = [bytes([i]) * 1000 for i in range(3)]
    paths = [cache.fill(_digest(b), [b], limit=10_000) for b in blobs]
    assert all(p.exists() for p in paths)  # all fresh: nothing may go yet
    old = time.time() - 3600
    for age, path in enumerate(paths):
        os.utime(path, (old + age, old + age))
    cache.lookup(_digest(blobs[0]))  # used just now: fresh again
    assert cache.trim() == 1000
    assert [p.exists() for p in paths] == [True, False, True]
