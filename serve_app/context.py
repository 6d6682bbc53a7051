"""Per-replica resources: built at start-up (ASGI lifespan), shared by every request, closed
at shutdown. Nothing connects at import time, so the app is constructible inside Ray actors."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis import Redis as SyncRedis

from ingest_ray.auth import AsyncApiKeyStore, JwtVerifier, TenantRateLimiter
from ingest_ray.config import Settings
from ingest_ray.control import ControlInbox, JobControl
from ingest_ray.dlq import Replayer
from ingest_ray.fetch.settings import FetchSettings
from ingest_ray.index.base import QueryEmbedder
from ingest_ray.kafka import KafkaClient, Producer
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.stages.factories import section
from ingest_ray.storage.blobs import FileBlobStore
from serve_app.settings import ApiSettings
from serve_app.streams import EventReader
from serve_app.submit import Submitter

CLIENT_NAME = "ingest-ray-api"


@dataclass
class ApiContext:
    """Everything a request handler may use; one per replica."""

    settings: Settings
    api: ApiSettings
    ledger: RedisLedger
    redis: aioredis.Redis
    keys: AsyncApiKeyStore
    jwt: JwtVerifier | None
    limiter: TenantRateLimiter
    control: JobControl
    submitter: Submitter
    events: EventReader
    kafka: KafkaClient
    producer: Producer
    replayer: Replayer
    pipelines: list[str]
    _sync_redis: SyncRedis
    open_streams: int = field(default=0)
    _embedder: QueryEmbedder | None = None

    @classmethod
    def open(cls, settings: Settings, api: ApiSettings) -> ApiContext:
        """Build the replica's clients (Redis pools connect lazily; the producer starts its
        background thread)."""
        pool = aioredis.ConnectionPool.from_url(
            settings.redis_url,
            max_connections=api.redis_max_connections,
            client_name=CLIENT_NAME,
        )
        client = aioredis.Redis(connection_pool=pool)
        sync = SyncRedis.from_url(settings.redis_url, decode_responses=True)
        ledger = RedisLedger(
            settings.redis_url,
            prefix=settings.redis_prefix,
            event_maxlen=settings.event_stream_maxlen,
            client=sync,
        )
        inbox = ControlInbox(
            sync, RuntimeOptions(name=settings.runtime_name).inbox_key(settings.redis_prefix)
        )
        kafka = KafkaClient.from_settings(settings)
        producer = kafka.producer(**{"client.id": CLIENT_NAME})
        blobs = FileBlobStore(section(settings, "fetch", FetchSettings).blob_dir)
        return cls(
            settings=settings,
            api=api,
            ledger=ledger,
            redis=client,
            keys=AsyncApiKeyStore(client, settings.redis_prefix),
            jwt=api.jwt_verifier(),
            limiter=TenantRateLimiter(
                client, prefix=settings.redis_prefix, rate_per_s=api.rate_per_s, burst=api.burst
            ),
            control=JobControl(ledger, inbox),
            submitter=Submitter(ledger, producer, settings.topic_requests, blobs),
            events=EventReader(client, settings.redis_prefix),
            kafka=kafka,
            producer=producer,
            replayer=Replayer(settings, sync, JobControl(ledger, inbox), producer),
            pipelines=sorted(builtin_catalog(settings).pipelines),
            _sync_redis=sync,
        )

    def embedder(self) -> QueryEmbedder:
        """The query embedder of ``GET /search``, loaded on first use (the pipeline's model)."""
        if self._embedder is None:
            from ingest_ray.index.search import query_embedder  # noqa: PLC0415 - loads a model
            from ingest_ray.text.settings import TextSettings  # noqa: PLC0415

            self._embedder = query_embedder(section(self.settings, "text", TextSettings))
        return self._embedder

    def redis_in_use(self) -> int:
        """Connections of the shared asyncio pool currently lent out (leak detector)."""
        pool = self.redis.connection_pool
        return len(getattr(pool, "_in_use_connections", ()))

    def redis_open(self) -> int:
        """Connections of the shared asyncio pool, in use or idle."""
        pool = self.redis.connection_pool
        return len(getattr(pool, "_in_use_connections", ())) + len(
            getattr(pool, "_available_connections", ())
        )

    async def aclose(self) -> None:
        """Flush the producer and release every connection."""
        try:
            self.producer.close(timeout=10.0)
        finally:
            await self.redis.aclose(close_connection_pool=True)
            self._sync_redis.close()
