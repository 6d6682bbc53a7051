"""The Starlette app in-process (httpx ASGI transport) over the real Redis and Kafka: the
per-tenant rate limit and API keys at rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import redis
from starlette.applications import Starlette

from ingest_ray.auth import ApiKeyStore, Scope, hash_key
from serve_app.app import build_app
from tests.conftest import Services
from tests.integration.api.conftest import api_settings, cleanup, issue_keys, make_settings


async def _burst(app: Starlette, keys: dict[str, str], n: int) -> tuple[list[httpx.Response], int]:
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://api")
    async with app.router.lifespan_context(app), client:
        a = [await client.get("/stats", headers={"X-API-Key": keys["a"]}) for _ in range(n)]
        b = await client.get("/stats", headers={"X-API-Key": keys["b"]})
    return a, b.status_code


def test_ratelimit_per_tenant_gives_429_with_retry_after(
    services: Services, tmp_path: Path
) -> None:
    settings = make_settings(services, tmp_path)
    store = ApiKeyStore(settings.redis_url, settings.redis_prefix)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = issue_keys(store)
        app = build_app(settings, api_settings(rate_per_s=0.5, burst=3))
        answers, other_tenant = asyncio.run(_burst(app, keys, 6))
    finally:
        store.close()
        cleanup(client, settings.redis_prefix)
        client.close()
    codes = [r.status_code for r in answers]
    assert codes[:3] == [200, 200, 200] and set(codes[3:]) == {429}
    limited = answers[3]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert other_tenant == 200


def test_apikeys_stored_hashed_listed_and_revoked(services: Services, redis_prefix: str) -> None:
    store = ApiKeyStore(services.redis_url, redis_prefix)
    client = redis.Redis.from_url(services.redis_url, decode_responses=True)
    try:
        key_id, plain = store.create("t1", ["jobs:read", "jobs:cancel"], "ci")
        store.create("t2", "jobs:write", "other")
        principal = store.verify(plain)
        dump = {k: client.dump(k) for k in client.scan_iter(match=f"{redis_prefix}*")}
        listed = store.list("t1")
        revoked = store.revoke(key_id)
        after = store.verify(plain)
        unknown = store.revoke("key_nope")
    finally:
        store.close()
        client.close()
    assert plain.startswith("irk_") and len(plain) > 40
    assert principal is not None and principal.tenant_id == "t1" and principal.key_id == key_id
    assert principal.scopes == {Scope.JOBS_READ, Scope.JOBS_CANCEL}
    assert all(plain.encode() not in (v or b"") for v in dump.values())
    assert any(hash_key(plain) in k for k in dump)
    assert [(i.key_id, i.name, i.revoked) for i in listed] == [(key_id, "ci", False)]
    assert revoked is True and after is None and unknown is False
