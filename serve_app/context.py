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
from ingest_ray.index.base import QueryEmbedder
from ingest_ray.kafka import KafkaClient, Producer
from ingest_ray.ledger.base import Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.stages.factories import blob_store, section
from serve_app.settings import ApiSettings
from serve_app.streams import EventReader
from serve_app.streams_pg import PgEventReader
from serve_app.submit import Submitter

CLIENT_NAME = "ingest-ray-api"


@dataclass
class ApiContext:
    """Everything a request handler may use; one per replica."""

    settings: Settings
    api: ApiSettings
    ledger: Ledger
    redis: aioredis.Redis
    keys: AsyncApiKeyStore
    jwt: JwtVerifier | None
    limiter: TenantRateLimiter
    control: JobControl
    submitter: Submitter
    events: EventReader | PgEventReader
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
        ledger = open_ledger(settings, redis_client=sync)
        inbox = ControlInbox.for_settings(sync, settings)
        kafka = KafkaClient.from_settings(settings)
        producer = kafka.producer(**{"client.id": CLIENT_NAME})
        blobs = blob_store(settings)
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
            submitter=Submitter(
                ledger,
                producer,
                settings.topic_requests,
                blobs,
                pipelines=sorted(builtin_catalog(settings).pipelines),
            ),
            events=_event_reader(settings, api, client, ledger),
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
            if isinstance(self.events, PgEventReader):
                await self.events.aclose()
            self.ledger.close()
            await self.redis.aclose(close_connection_pool=True)
            self._sync_redis.close()


def _event_reader(
    settings: Settings, api: ApiSettings, client: aioredis.Redis, ledger: Ledger
) -> EventReader | PgEventReader:
    """Where SSE reads events: the ledger's Redis streams, or its PostgreSQL tables (woken by
    LISTEN/NOTIFY) when the ledger backend is postgres."""
    if settings.ledger_backend == "postgres":
        return PgEventReader.from_settings(
            settings, poll_s=api.sse_poll_s, ensure_schema=ledger.ping
        )
    return EventReader(client, settings.redis_prefix, poll_s=api.sse_poll_s)
