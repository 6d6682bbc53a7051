"""The API key of the local default tenant, for ``ingest-ray up``.

Keys are stored hashed in Redis, so the plaintext cannot be read back from there: the first run
creates a key and keeps it in a file under the state dir (mode 0600, one file per Redis and key
prefix); later runs show it again, as long as Redis still knows it (a revoked key, or a Redis
that lost its data, gets a new one).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ingest_ray.auth import ALL_SCOPES, ApiKeyStore
from ingest_ray.config import Settings

LOCAL_TENANT = "default"


@dataclass(frozen=True, slots=True)
class LocalKey:
    """A usable key of the local tenant; ``created`` is True when this run made it."""

    key_id: str
    key: str
    tenant: str
    path: Path
    created: bool


def key_path(settings: Settings) -> Path:
    """Where the key for this Redis and key prefix is kept."""
    scope = hashlib.sha256(f"{settings.redis_url}|{settings.redis_prefix}".encode()).hexdigest()
    return settings.state_dir / "up" / f"api-key-{scope[:12]}.json"


def local_key(settings: Settings, *, tenant: str = LOCAL_TENANT) -> LocalKey:
    """The saved key if Redis still accepts it for ``tenant``, else a new one (saved)."""
    path = key_path(settings)
    store = ApiKeyStore(settings.redis_url, settings.redis_prefix)
    try:
        saved = _read(path)
        if saved is not None:
            principal = store.verify(saved["key"])
            if principal is not None and principal.tenant_id == tenant:
                return LocalKey(saved["key_id"], saved["key"], tenant, path, created=False)
        scopes = " ".join(sorted(s.value for s in ALL_SCOPES))
        key_id, key = store.create(tenant, scopes, "ingest-ray up (local)")
    finally:
        store.close()
    _write(path, {"key_id": key_id, "key": key, "tenant": tenant})
    return LocalKey(key_id, key, tenant, path, created=True)


def _read(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("key"), str) and data.get("key_id"):
        return {k: str(v) for k, v in data.items()}
    return None


def _write(path: Path, record: dict[str, str]) -> None:
    """Write ``record`` readable by its owner only (the file never exists with wider rights)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    os.replace(tmp, path)
