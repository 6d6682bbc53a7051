"""A node-local cache of remote blobs, for tools that need a file path (PDF parsers).

Blobs never change (the key is their hash), so a cached copy is valid for as long as it is kept.
A copy is written to a temp file and renamed into place only once its bytes hash to its digest,
so several actors on one node may fill the same entry at once and none reads a partial file. The
cache is bounded in bytes: after each fill the least recently used entries go, except those used
within ``min_age_s`` (a path just handed to a parser is not pulled from under it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest_ray.storage.blobs import blob_key, check_size
from ingest_ray.storage.errors import BlobCorruptError


@dataclass(frozen=True, slots=True)
class _Entry:
    path: Path
    size: int
    used: float


class BlobCache:
    """Local copies under ``root/ab/cd/<digest>``, at most ``max_bytes`` in total (best effort)."""

    def __init__(self, root: Path, *, max_bytes: int, min_age_s: float = 600.0) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.min_age_s = min_age_s

    def location(self, digest: str) -> Path:
        """Where the copy of ``digest`` lives (whether or not it is there)."""
        return self.root / blob_key(digest)

    def lookup(self, digest: str) -> Path | None:
        """The cached copy, marked as just used; ``None`` when there is none."""
        path = self.location(digest)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def fill(self, digest: str, chunks: Iterable[bytes], *, limit: int) -> Path:
        """Write ``chunks`` as the copy of ``digest``; checks the size and the hash."""
        target = self.location(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            sha, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    size += len(chunk)
                    check_size(size, limit, f"blob {digest}")
                    sha.update(chunk)
                    fh.write(chunk)
            if sha.hexdigest() != digest:
                raise BlobCorruptError(f"blob {digest} does not hash to its name")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.trim(keep=target)
        return target

    def trim(self, *, keep: Path | None = None) -> int:
        """Remove least recently used copies until the cache fits; returns bytes freed."""
        entries = self._entries()
        total = sum(e.size for e in entries)
        freed = 0
        cutoff = time.time() - self.min_age_s
        for entry in sorted(entries, key=lambda e: e.used):
            if total - freed <= self.max_bytes:
                break
            if entry.path == keep or entry.used > cutoff:
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
                freed += entry.size
        return freed

    def _entries(self) -> list[_Entry]:
        entries = []
        for path in self.root.glob("*/*/*"):
            if path.name.startswith(".tmp-"):
                continue
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                entries.append(_Entry(path, info.st_size, max(info.st_mtime, info.st_atime)))
        return entries
