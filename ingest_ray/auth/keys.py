"""API keys: shown once in plain text, stored only as a sha256 hash in Redis.

Layout under the prefix: ``apikey:{key_id}`` hash (tenant, scopes, name, created_at, revoked,
hash), ``apikey:by-hash:{sha256}`` -> key_id for lookup, ``apikeys`` set of every key id. A key is
``irk_`` + 256 random bits, so a plain sha256 (no salt, no stretching) is safe to store.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import redis
import redis.asyncio as aioredis

from ingest_ray.auth.principal import Principal, Scope, check_tenant, parse_scopes
from ingest_ray.ids import new_id
from ingest_ray.keys import RedisKeys

KEY_PREFIX: Final = "irk_"


def hash_key(plaintext: str) -> str:
    """The stored form of a key (hex sha256)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A stored key without its secret (what ``list`` shows)."""

    key_id: str
    tenant_id: str
    scopes: frozenset[Scope]
    name: str
    created_at: datetime
    revoked: bool


def _info(row: dict[str, str]) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row["key_id"],
        tenant_id=row["tenant"],
        scopes=parse_scopes(row.get("scopes", "")),
        name=row.get("name", ""),
        created_at=datetime.fromisoformat(row["created_at"]),
        revoked=row.get("revoked") == "1",
    )


def _principal(row: dict[str, str]) -> Principal | None:
    if not row or row.get("revoked") == "1":
        return None
    info = _info(row)
    return Principal(tenant_id=info.tenant_id, scopes=info.scopes, key_id=info.key_id)


class _Keys:
    """Key names shared by the sync and async stores."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._keys = RedisKeys(prefix)

    def record(self, key_id: str) -> str:
        return self._keys.apikey(key_id)

    def by_hash(self, digest: str) -> str:
        return self._keys.apikey_by_hash(digest)

    @property
    def all(self) -> str:
        return self._keys.apikeys


class ApiKeyStore:
    """Create, list, revoke and verify API keys (the admin side; used by the CLI and tests)."""

    def __init__(self, redis_url: str, prefix: str = "ir:") -> None:
        self._r: redis.Redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self._k = _Keys(prefix)

    def create(self, tenant: str, scopes: str | Iterable[str], name: str = "") -> tuple[str, str]:
        """Store a new key for ``tenant`` with ``scopes``; return ``(key_id, plaintext)``. The
        plaintext is not kept anywhere: show it to the user once."""
        granted = parse_scopes(scopes)
        if not granted:
            raise ValueError("an API key needs at least one scope")
        check_tenant(tenant)
        key_id, plaintext = f"key_{new_id()}", KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(plaintext)
        row: dict[Any, Any] = {
            "key_id": key_id,
            "tenant": tenant,
            "scopes": " ".join(sorted(s.value for s in granted)),
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "revoked": "0",
            "hash": digest,
        }
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._k.record(key_id), mapping=row)
        pipe.set(self._k.by_hash(digest), key_id)
        pipe.sadd(self._k.all, key_id)
        pipe.execute()
        return key_id, plaintext

    def list(self, tenant: str | None = None) -> list[ApiKeyInfo]:
        """Every key (of ``tenant`` when given), oldest first; secrets are never returned."""
        ids = sorted(cast("set[str]", self._r.smembers(self._k.all)))
        pipe = self._r.pipeline(transaction=False)
        for key_id in ids:
            pipe.hgetall(self._k.record(key_id))
        infos = [_info(row) for row in pipe.execute() if row]
        return [i for i in infos if tenant is None or i.tenant_id == tenant]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key at once (verification fails from now on); False if no such key."""
        digest = cast("str | None", self._r.hget(self._k.record(key_id), "hash"))
        if digest is None:
            return False
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._k.record(key_id), "revoked", "1")
        pipe.delete(self._k.by_hash(digest))
        pipe.execute()
        return True

    def verify(self, plaintext: str) -> Principal | None:
        """The principal of a valid, unrevoked key; ``None`` otherwise."""
        if not plaintext.startswith(KEY_PREFIX):
            return None
        key_id = cast("str | None", self._r.get(self._k.by_hash(hash_key(plaintext))))
        if key_id is None:
            return None
        return _principal(cast("dict[str, str]", self._r.hgetall(self._k.record(key_id))))

    def close(self) -> None:
        """Release the connection pool."""
        self._r.close()


class AsyncApiKeyStore:
    """The verifying half of :class:`ApiKeyStore` on a shared asyncio Redis client (servers)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "ir:") -> None:
        self._r = client
        self._k = _Keys(prefix)

    async def verify(self, plaintext: str) -> Principal | None:
        """The principal of a valid, unrevoked key; ``None`` otherwise."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 256:
            return None
        raw_id = await self._r.get(self._k.by_hash(hash_key(plaintext)))
        if raw_id is None:
            return None
        key_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        raw = await self._r.hgetall(self._k.record(key_id))
        row = {_text(k): _text(v) for k, v in raw.items()}
        return _principal(row)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
