"""The job API on Ray Serve (loopback, free port) over the real Kafka and Redis, started once for
this directory, with API keys and a JWT secret for two tenants."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis

from ingest_ray.auth import ApiKeyStore
from ingest_ray.config import Settings
from ingest_ray.kafka import KafkaClient
from ingest_ray.ledger.base import Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.ports import free_port
from serve_app.settings import ApiSettings
from tests.conftest import Services

JWT_SECRET = "test-secret-0123456789-abcdefghijklmnop"
JWT_AUDIENCE = "ingest-ray-api"
JWT_ISSUER = "https://issuer.test"
ALL = "jobs:read jobs:write jobs:cancel"


def make_settings(services: Services, tmp: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=f"test:api:{tag}:", topic_partitions=1, runtime_name=f"api-{tag}",
        topic_requests=f"test.{tag}.requests", topic_results=f"test.{tag}.results",
        topic_mapping=f"test.{tag}.mapping", topic_deadletter=f"test.{tag}.dlq",
        sections={"storage": {"blob_url": str(tmp / "blobs")},
                  "index": {"lancedb_dir": str(tmp / "lancedb")}},
    )  # fmt: skip


def token(**claims: Any) -> str:
    """A JWT signed with the test secret; defaults make it valid for tenant ``a``."""
    body = {
        "sub": "alice", "tenant": "a", "scope": ALL, "aud": JWT_AUDIENCE, "iss": JWT_ISSUER,
        "exp": int(time.time()) + 300,
    }  # fmt: skip
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, JWT_SECRET, "HS256")


@dataclass
class ApiEnv:
    """A running API and what tests need around it."""

    url: str
    settings: Settings
    api: ApiSettings
    ledger: Ledger
    redis: redis.Redis
    keys: dict[str, str]
    store: ApiKeyStore

    def client(self, key: str | None = "a", **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kwargs)


def cleanup(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)


def api_settings(**overrides: Any) -> ApiSettings:
    base: dict[str, Any] = {
        "jwt_secret": JWT_SECRET, "jwt_audience": JWT_AUDIENCE, "jwt_issuer": JWT_ISSUER,
        "sse_heartbeat_s": 0.5, "sse_poll_s": 0.1, "rate_per_s": 10000, "burst": 10000,
        "max_upload_mb": 1,
    }  # fmt: skip
    return ApiSettings(**{**base, **overrides})


def issue_keys(store: ApiKeyStore) -> dict[str, str]:
    spec = {
        "a": ("a", ALL), "b": ("b", ALL), "a_read": ("a", "jobs:read"),
        "a_write": ("a", "jobs:write"), "a_cancel": ("a", "jobs:cancel"),
    }  # fmt: skip
    return {name: store.create(t, scopes, name)[1] for name, (t, scopes) in spec.items()}


@pytest.fixture(scope="package")
def api_env(
    services: Services, local_ray: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiEnv]:
    from serve_app import server

    settings = make_settings(services, tmp_path_factory.mktemp("api"))
    KafkaClient.from_settings(settings).ensure_topics()
    api = api_settings()
    store = ApiKeyStore(settings.redis_url, settings.redis_prefix)
    keys = issue_keys(store)
    port = free_port()
    server.start(settings, api, host="127.0.0.1", port=port, replicas=1)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    ledger = open_ledger(settings)
    env = ApiEnv(f"http://127.0.0.1:{port}", settings, api, ledger, client, keys, store)
    try:
        yield env
    finally:
        server.stop()
        ledger.close()
        store.close()
        cleanup(client, settings.redis_prefix)
        client.close()
