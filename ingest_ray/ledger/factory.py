"""One place that builds the configured ledger backend (``INGEST_RAY_LEDGER_BACKEND``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_ray.errors import ConfigurationError
from ingest_ray.ledger.base import Ledger

if TYPE_CHECKING:
    import redis

    from ingest_ray.config import Settings


def open_ledger(settings: Settings, *, redis_client: redis.Redis | None = None) -> Ledger:
    """The ledger ``settings`` select: :class:`RedisLedger` (``redis``, the default) or
    :class:`PostgresLedger` (``postgres``, at ``INGEST_RAY_POSTGRES_DSN``). ``redis_client``
    lets a process share its Redis client with a Redis ledger; it is ignored otherwise."""
    backend: Any = settings.ledger_backend
    if backend == "redis":
        from ingest_ray.ledger.redis import RedisLedger  # noqa: PLC0415  (driver on demand)

        if redis_client is not None:
            return RedisLedger(
                settings.redis_url,
                prefix=settings.redis_prefix,
                event_maxlen=settings.event_stream_maxlen,
                client=redis_client,
            )
        return RedisLedger.from_settings(settings)
    if backend == "postgres":
        from ingest_ray.ledger.postgres import PostgresLedger  # noqa: PLC0415  (driver on demand)

        return PostgresLedger.from_settings(settings)
    raise ConfigurationError(f"unknown ledger backend {backend!r} (redis or postgres)")
