"""A test stage that calls a rate-limited source, for tests of admission (shipped with the
package, like ``testing.py``, so Ray workers can import it).

Each try takes a token of the source named by the request metadata's ``source`` (none when it
is not given) through the adapters' shared limiter, exactly as the HTTP clients do: the token the
Dispatcher reserved for the try is spent, any other call raises ``RateLimitWaitError`` at once.
It then works for ``sleep_s`` (default 0.1). It records, in Redis under the settings' prefix,
how many of its calls ran at once in this actor (``limited:max``, field = the actor's pid) and
when each call started (``limited:starts``, a list of epoch seconds).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from ingest_ray.adapters.ratelimit import rate_limiter_from_settings
from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.runtime.sources import adapter_settings
from ingest_ray.stages.base import StageInput, StageOutput, run_each


class RateLimitedStage:
    """Takes a token, then works; counts its concurrent calls."""

    batch_size = 1

    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        self._prefix = settings.redis_prefix
        self._limiter = rate_limiter_from_settings(adapter_settings(settings))
        self._redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        self._running = 0
        self._max = 0

    async def run(self, item: StageInput) -> StageOutput:
        """One try: the token, the work, the record."""
        source = item.metadata.get("source")
        if source:
            await self._limiter.acquire(str(source))
        self._running += 1
        self._max = max(self._max, self._running)
        try:
            await self._redis.rpush(f"{self._prefix}limited:starts", repr(time.time()))
            await self._redis.hset(f"{self._prefix}limited:max", str(os.getpid()), self._max)
            await asyncio.sleep(float(item.metadata.get("sleep_s", 0.1)))
        finally:
            self._running -= 1
        return StageOutput(data={"stage": self.name})

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """One by one."""
        return await run_each(self.run, items)

    async def aclose(self) -> None:
        """Close the clients."""
        await self._limiter.aclose()
        await self._redis.aclose()
