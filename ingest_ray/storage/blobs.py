"""Content-addressed blob store: an interface and a directory implementation.

Blobs are addressed by the sha256 of their bytes, so writing the same content twice stores it
once and a replayed stage finds its artifact where it left it. Object storage can implement the
same protocol later.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BlobStore(Protocol):
    """Where stages keep large artifacts."""

    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 (hex)."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest`` (``KeyError`` when absent)."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether ``digest`` is stored."""
        ...

    def path(self, digest: str) -> Path:
        """A local file holding the blob (for tools that want a path, e.g. PDF parsers)."""
        ...


class FileBlobStore:
    """Blobs as files under ``root/ab/cd/abcd...``, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes) -> str:
        """Store ``data`` once; return its sha256."""
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

    def put_json(self, value: Any) -> str:
        """Store a JSON document (canonical encoding, so equal values share one blob)."""
        return self.put(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())

    def get(self, digest: str) -> bytes:
        """The stored bytes."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise KeyError(digest) from None

    def get_json(self, digest: str) -> Any:
        """A stored JSON document."""
        return json.loads(self.get(digest))

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return self.path(digest).exists()

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists yet)."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest
