"""The blob store on object storage (S3 and S3-compatible servers), through obstore.

obstore wraps the Rust ``object_store`` crate, the same one LanceDB uses, so blobs and the index
share one way of reaching S3 and one set of credentials. An S3 PUT is atomic (a whole object
appears, or none; large blobs go up as a multipart upload that becomes visible only when it
completes), so a reader on any node sees a whole blob or none. Reads check the size cap before
the body is fetched and the hash after, so a wrong or truncated object is never handed on.
:meth:`ObjectBlobStore.path` materialises a blob in a node-local :class:`BlobCache`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

from ingest_ray.errors import ConfigurationError
from ingest_ray.storage.blobs import DEFAULT_MAX_BYTES, blob_key, canonical_json, check_size
from ingest_ray.storage.cache import BlobCache
from ingest_ray.storage.errors import (
    ArtifactMissingError,
    BlobCorruptError,
    BlobStoreUnavailableError,
)

if TYPE_CHECKING:
    from obstore.store import ObjectStore

#: download chunk of a cache fill (memory held per download)
_CHUNK = 1024 * 1024


@contextlib.contextmanager
def _translated(url: str, what: str) -> Iterator[None]:
    """obstore's errors as the store's typed ones (a missing object is handled by callers)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (PermissionDeniedError, UnauthenticatedError) as exc:
        raise ConfigurationError(f"{what} at {url}: access denied ({exc})"[:600]) from exc
    except (OSError, obstore.exceptions.BaseError) as exc:
        raise BlobStoreUnavailableError(f"{what} at {url} failed: {exc}"[:600]) from exc


class ObjectBlobStore:
    """Blobs as objects ``<prefix>/ab/cd/abcd...`` in an obstore store (``S3Store`` for
    ``s3://``; tests may pass a ``LocalStore`` or ``MemoryStore``)."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        url: str,
        cache: BlobCache,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.url = url
        self.cache = cache
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"ObjectBlobStore({self.url!r})"

    def put(self, data: bytes) -> str:
        """Store ``data`` once (a HEAD first: content-addressed blobs are never rewritten)."""
        check_size(len(data), self.max_bytes, "the blob")
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        with _translated(self.url, f"storing blob {digest}"):
            obstore.put(self.store, blob_key(digest), data)
        return digest

    def get(self, digest: str) -> bytes:
        """The stored bytes, checked against the size cap and the digest."""
        key = blob_key(digest)
        with _translated(self.url, f"reading blob {digest}"):
            try:
                result = obstore.get(self.store, key)
            except FileNotFoundError:
                raise ArtifactMissingError(f"blob {digest} is not in {self.url}") from None
            check_size(int(result.meta["size"]), self.max_bytes, f"blob {digest}")
            data = bytes(result.bytes())
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorruptError(f"blob {digest} in {self.url} does not hash to its name")
        return data

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored (a HEAD request)."""
        key = blob_key(digest)
        with _translated(self.url, f"looking up blob {digest}"):
            try:
                obstore.head(self.store, key)
            except FileNotFoundError:
                return False
        return True

    def path(self, digest: str) -> Path:
        """A local copy of the blob (downloaded into the cache on first use). When the blob is
        not stored the returned path does not exist."""
        cached = self.cache.lookup(digest)
        if cached is not None:
            return cached
        key = blob_key(digest)
        with _translated(self.url, f"downloading blob {digest}"):
            try:
                result = obstore.get(self.store, key)
            except FileNotFoundError:
                return self.cache.location(digest)
            check_size(int(result.meta["size"]), self.max_bytes, f"blob {digest}")
            chunks = (bytes(chunk) for chunk in result.stream(min_chunk_size=_CHUNK))
            return self.cache.fill(digest, chunks, limit=self.max_bytes)

    def put_json(self, value: Any) -> str:
        """Store a JSON document (canonical encoding, so equal values share one blob)."""
        return self.put(canonical_json(value))

    def get_json(self, digest: str) -> Any:
        """A stored JSON document."""
        return json.loads(self.get(digest))
