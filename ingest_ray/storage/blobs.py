"""Content-addressed blob store: the protocol, and the directory implementation.

Blobs are addressed by the sha256 of their bytes, so writing the same content twice stores it
once and a replayed stage finds its artifact where it left it. Every implementation writes
atomically (a reader sees a whole blob or none) and refuses blobs over its size cap. The
directory store serves one machine or a shared POSIX mount (NFS, CephFS, Lustre...): every node
that mounts the same path sees the same blobs. Object storage is in
:mod:`ingest_ray.storage.objects`; :func:`ingest_ray.storage.factory.open_blob_store` picks one
from a URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from ingest_ray.storage.errors import ArtifactMissingError, BlobTooLargeError

#: the default size cap of one blob (a PDF, a content list, a chunk list, a vector matrix)
DEFAULT_MAX_BYTES: Final = 512 * 1024 * 1024
_HEX: Final = frozenset("0123456789abcdef")


@runtime_checkable
class BlobStore(Protocol):
    """Where stages keep large artifacts, addressed by the sha256 of their bytes."""

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically; return its sha256 (hex). Raises ``BlobTooLargeError``."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``; ``ArtifactMissingError`` (a ``KeyError``) when
        absent, ``ValueError`` for something that is not a sha256."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether ``digest`` is stored."""
        ...

    def path(self, digest: str) -> Path:
        """A local file holding the blob, for tools that want a path (PDF parsers). A remote
        store materialises it in a local cache; the file does not exist when the blob is
        not stored."""
        ...

    def put_json(self, value: Any) -> str:
        """Store a JSON document (canonical encoding, so equal values share one blob)."""
        ...

    def get_json(self, digest: str) -> Any:
        """A stored JSON document."""
        ...


def check_digest(digest: str) -> str:
    """``digest`` if it is a lower-case sha256 hex digest, else ``ValueError``."""
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return digest


def blob_key(digest: str) -> str:
    """The relative location of a blob: ``ab/cd/abcd...`` (spreads blobs over directories)."""
    check_digest(digest)
    return f"{digest[:2]}/{digest[2:4]}/{digest}"


def canonical_json(value: Any) -> bytes:
    """The one encoding of a JSON value that the stores hash (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def check_size(size: int, limit: int, what: str) -> None:
    """Raise :class:`BlobTooLargeError` when ``size`` is over ``limit``."""
    if size > limit:
        raise BlobTooLargeError(f"{what} has {size} bytes, over the blob cap of {limit}")


class FileBlobStore:
    """Blobs as files under ``root/ab/cd/abcd...``, written atomically (temp file + rename).

    ``root`` may be a local directory or a shared POSIX mount; a rename within one directory is
    atomic on both, so a reader on any node sees a whole blob or none.
    """

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def put(self, data: bytes) -> str:
        """Store ``data`` once; return its sha256."""
        check_size(len(data), self.max_bytes, "the blob")
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        """The stored bytes."""
        path = self.path(digest)
        try:
            with path.open("rb") as fh:
                check_size(os.fstat(fh.fileno()).st_size, self.max_bytes, f"blob {digest}")
                return fh.read()
        except FileNotFoundError:
            raise ArtifactMissingError(f"blob {digest} is not in {self.root}") from None

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return self.path(digest).exists()

    def put_json(self, value: Any) -> str:
        """Store a JSON document (canonical encoding, so equal values share one blob)."""
        return self.put(canonical_json(value))

    def get_json(self, digest: str) -> Any:
        """A stored JSON document."""
        return json.loads(self.get(digest))

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists yet)."""
        return self.root / blob_key(digest)
