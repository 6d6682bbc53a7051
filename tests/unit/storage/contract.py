"""The blob-store contract: every backend passes these (unit: file, obstore local/memory;
integration: S3 on a real server). Each check takes a factory ``cap -> store``; stores made by
one factory share their blobs."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable

import pytest

from ingest_ray.storage import ArtifactMissingError, BlobStore, BlobTooLargeError

StoreFactory = Callable[[int], BlobStore]
CAP = 64 * 1024


def roundtrip_is_content_addressed(make: StoreFactory) -> None:
    store = make(CAP)
    data = b"%PDF-1.7 some bytes"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put(data) == digest
    assert store.exists(digest) and store.get(digest) == data
    assert make(CAP).get(digest) == data  # another store on the same backend sees it


def json_is_canonical(make: StoreFactory) -> None:
    store = make(CAP)
    first = store.put_json({"b": [1, 2], "a": "x"})
    assert store.put_json({"a": "x", "b": [1, 2]}) == first
    assert store.get_json(first) == {"a": "x", "b": [1, 2]}
    assert store.get(first) == b'{"a":"x","b":[1,2]}'


def missing_blob_is_a_typed_error(make: StoreFactory) -> None:
    store, digest = make(CAP), hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(digest)
    with pytest.raises(ArtifactMissingError) as info:
        store.get(digest)
    assert isinstance(info.value, KeyError) and not info.value.retryable
    assert digest in str(info.value) and not str(info.value).startswith("'")
    assert pickle.loads(pickle.dumps(info.value)).message == info.value.message
    assert not store.path(digest).exists()


def malformed_digests_are_refused(make: StoreFactory) -> None:
    store = make(CAP)
    for bad in ("../../etc/passwd", "ABC", "g" * 64, "A" * 64):
        for call in (store.get, store.exists, store.path):
            with pytest.raises(ValueError, match="sha256"):
                call(bad)


def size_cap_holds_on_put_and_get(make: StoreFactory) -> None:
    small, large = make(1000), make(CAP)
    data = b"x" * 1001
    with pytest.raises(BlobTooLargeError):
        small.put(data)
    digest = hashlib.sha256(data).hexdigest()
    assert not large.exists(digest)  # a refused put leaves nothing behind
    assert large.put(data) == digest
    with pytest.raises(BlobTooLargeError):
        small.get(digest)


def path_is_a_local_copy(make: StoreFactory) -> None:
    store = make(CAP)
    data = b"%PDF-1.4 " + bytes(range(256)) * 40
    digest = store.put(data)
    path = store.path(digest)
    assert path.is_file() and path.read_bytes() == data
    assert store.path(digest) == path


CHECKS = [
    roundtrip_is_content_addressed,
    json_is_canonical,
    missing_blob_is_a_typed_error,
    malformed_digests_are_refused,
    size_cap_holds_on_put_and_get,
    path_is_a_local_copy,
]
