"""What only the object store does: download into the node-local cache, check sizes before
downloading and hashes after, and report a store that does not answer as retryable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import obstore
import pytest
from obstore.store import MemoryStore

from ingest_ray.errors import RetryableError
from ingest_ray.storage import BlobCorruptError, BlobStoreUnavailableError, BlobTooLargeError
from ingest_ray.storage.blobs import blob_key
from ingest_ray.storage.cache import BlobCache
from ingest_ray.storage.objects import ObjectBlobStore


def _store(tmp: Path, backend: MemoryStore, cap: int = 1 << 20) -> ObjectBlobStore:
    cache = BlobCache(tmp / "cache", max_bytes=1 << 30)
    return ObjectBlobStore(backend, url="memory://", cache=cache, max_bytes=cap)


def test_object_store_path_downloads_once_into_the_cache(tmp_path: Path) -> None:
    backend = MemoryStore()
    store = _store(tmp_path, backend)
    digest = store.put(b"%PDF-1.4 cached")
    path = store.path(digest)
    assert path.is_relative_to(tmp_path / "cache") and path.read_bytes() == b"%PDF-1.4 cached"
    obstore.delete(backend, blob_key(digest))
    assert store.path(digest) == path and path.is_file()  # served from the cache now


def test_object_store_does_not_download_a_blob_over_the_cap(tmp_path: Path) -> None:
    backend = MemoryStore()
    digest = _store(tmp_path, backend).put(b"y" * 5000)
    small = _store(tmp_path, backend, cap=4000)
    with pytest.raises(BlobTooLargeError):
        small.path(digest)
    assert not small.cache.location(digest).exists()


def test_object_store_refuses_bytes_that_do_not_match_their_digest(tmp_path: Path) -> None:
    backend = MemoryStore()
    store = _store(tmp_path, backend)
    digest = hashlib.sha256(b"the real bytes").hexdigest()
    obstore.put(backend, blob_key(digest), b"tampered bytes")
    with pytest.raises(BlobCorruptError):
        store.get(digest)
    with pytest.raises(BlobCorruptError):
        store.path(digest)
    assert not store.cache.location(digest).exists()
    assert list(store.cache.root.rglob(".tmp-*")) == []


def test_object_store_errors_of_the_backend_are_retryable(tmp_path: Path) -> None:
    store = _store(tmp_path, MemoryStore())
    digest = store.put(b"fine")

    def boom(*_: object, **__: object) -> None:
        raise obstore.exceptions.GenericError("connection reset by peer")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(obstore, "get", boom)
        mp.setattr(obstore, "head", boom)
        for call in (store.get, store.exists, store.path):
            with pytest.raises(BlobStoreUnavailableError) as info:
                call(digest)
            assert isinstance(info.value, RetryableError)
            assert "connection reset" in str(info.value)
