"""Blob stores for the contract suite: the directory store and the object store over obstore's
local and in-memory backends (no network; the S3 backend runs the same suite in
tests/integration/storage against a real S3 server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from obstore.store import LocalStore, MemoryStore

from ingest_ray.storage import BlobStore, FileBlobStore
from ingest_ray.storage.cache import BlobCache
from ingest_ray.storage.objects import ObjectBlobStore

#: builds a store with a size cap; two stores from one factory share their blobs
StoreFactory = Callable[[int], BlobStore]


def _file(tmp: Path) -> StoreFactory:
    return lambda cap: FileBlobStore(tmp / "blobs", max_bytes=cap)


def _object(tmp: Path, backend: LocalStore | MemoryStore) -> StoreFactory:
    def make(cap: int) -> BlobStore:
        cache = BlobCache(tmp / f"cache-{cap}", max_bytes=1 << 30)
        return ObjectBlobStore(backend, url="test://", cache=cache, max_bytes=cap)

    return make


@pytest.fixture(params=["file", "object-local", "object-memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "file":
        return _file(tmp_path)
    if request.param == "object-local":
        (tmp_path / "objects").mkdir()
        return _object(tmp_path, LocalStore(tmp_path / "objects"))
    return _object(tmp_path, MemoryStore())
