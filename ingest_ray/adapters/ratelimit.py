"""Per-source rate limits: a token bucket in Redis shared by every actor, or one per process.

The Redis bucket lives at ``{prefix}ratelimit:{source}`` (a hash of ``tokens`` and ``ts``) and is
refilled and spent by one Lua script using the server's clock, so any number of limiter
instances on any number of machines together stay within a source's rate: in any window of
``T`` seconds at most ``burst + rate * T`` requests are granted.
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest_ray.adapters.errors import RateLimitWaitError
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.errors import ServiceUnavailableError

# KEYS[1] bucket; ARGV rate (tokens/s), burst (capacity). Returns {granted, wait_us, now_us}.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
  ts = now
end
local granted = 0
local wait_us = 0
if tokens >= 1 then
  tokens = tokens - 1
  granted = 1
else
  wait_us = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens),
           'ts', string.format('%.0f', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait_us, now}
"""


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A source's budget: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float = 1.0


@dataclass(frozen=True, slots=True)
class TokenDecision:
    """One try at taking a token: granted or not, how long to wait, and the clock used."""

    granted: bool
    wait_s: float
    at_s: float


@runtime_checkable
class RateLimiter(Protocol):
    """Waits until the named source may be called once more."""

    async def acquire(self, source: str) -> None:
        """Return when a request to ``source`` is allowed; may raise ``RateLimitWaitError``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


Sleep = Callable[[float], Awaitable[None]]


class _BucketLimiter(abc.ABC):
    """Shared loop: try for a token, sleep the advised time (plus jitter), give up after a cap."""

    def __init__(self, specs: Mapping[str, RateSpec], *, max_wait_s: float, sleep: Sleep) -> None:
        self._specs = dict(specs)
        self._max_wait_s = max_wait_s
        self._sleep = sleep

    @abc.abstractmethod
    async def try_acquire(self, source: str) -> TokenDecision:
        """Take a token for ``source`` if one is free, without waiting."""

    async def acquire(self, source: str) -> None:
        """Wait until ``source`` has a free token (unknown sources are not limited)."""
        if source in self._specs:
            await self.acquire_token(source)

    async def acquire_token(self, source: str) -> TokenDecision:
        """Wait for a token of a limited ``source``; return the granting decision."""
        waited = 0.0
        while True:
            decision = await self.try_acquire(source)
            if decision.granted:
                return decision
            delay = decision.wait_s * (1.0 + random.random() * 0.1)  # noqa: S311 - jitter only
            if waited + delay > self._max_wait_s:
                raise RateLimitWaitError(
                    f"no {source} rate-limit token within {self._max_wait_s:.0f}s",
                    retry_after=decision.wait_s,
                )
            await self._sleep(delay)
            waited += delay

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Nothing to release by default."""


class RedisRateLimiter(_BucketLimiter):
    """The cluster-wide limiter: one Redis token bucket per source."""

    def __init__(
        self,
        redis_url: str,
        specs: Mapping[str, RateSpec],
        *,
        prefix: str = "ir:",
        max_wait_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(specs, max_wait_s=max_wait_s, sleep=sleep)
        self._redis_url = redis_url
        self._prefix = prefix
        self._client: aioredis.Redis | None = None
        self._script: object | None = None

    def key(self, source: str) -> str:
        """The Redis key of ``source``'s bucket."""
        return f"{self._prefix}ratelimit:{source}"

    async def try_acquire(self, source: str) -> TokenDecision:
        """Run the token-bucket script once for ``source``."""
        spec = self._specs[source]
        if self._client is None:
            self._client = aioredis.Redis.from_url(self._redis_url)
            self._script = self._client.register_script(_BUCKET_SCRIPT)
        script = cast("Callable[..., Awaitable[list[int]]]", self._script)
        try:
            granted, wait_us, now_us = await script(
                keys=[self.key(source)], args=[repr(spec.rate), repr(spec.burst)]
            )
        except RedisError as exc:
            raise ServiceUnavailableError(f"rate limiter: Redis failed: {exc}") from exc
        return TokenDecision(bool(granted), int(wait_us) / 1e6, int(now_us) / 1e6)

    async def aclose(self) -> None:
        """Close the Redis connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class LocalRateLimiter(_BucketLimiter):
    """The same token bucket in process memory (one process only; tests, single-node runs)."""

    def __init__(
        self,
        specs: Mapping[str, RateSpec],
        *,
        max_wait_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(specs, max_wait_s=max_wait_s, sleep=sleep)
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}

    async def try_acquire(self, source: str) -> TokenDecision:
        """Refill from the elapsed time, then spend one token if there is one."""
        spec = self._specs[source]
        now = self._clock()
        tokens, ts = self._state.get(source, (spec.burst, now))
        tokens = min(spec.burst, tokens + max(0.0, now - ts) * spec.rate)
        if tokens >= 1.0:
            self._state[source] = (tokens - 1.0, now)
            return TokenDecision(True, 0.0, now)
        self._state[source] = (tokens, now)
        return TokenDecision(False, (1.0 - tokens) / spec.rate, now)


class NullRateLimiter:
    """No limits at all (replay servers, tests)."""

    async def acquire(self, source: str) -> None:
        """Always allowed."""

    async def aclose(self) -> None:
        """Nothing to release."""


def rate_limiter_from_settings(settings: AdapterSettings) -> RateLimiter:
    """The limiter the settings ask for; nothing connects until the first ``acquire``."""
    specs = {
        source: RateSpec(rate, settings.rate_limit_burst)
        for source, rate in settings.rates().items()
    }
    if settings.rate_limit_backend == "redis":
        return RedisRateLimiter(
            settings.redis_url,
            specs,
            prefix=settings.redis_prefix,
            max_wait_s=settings.rate_limit_max_wait_s,
        )
    if settings.rate_limit_backend == "local":
        return LocalRateLimiter(specs, max_wait_s=settings.rate_limit_max_wait_s)
    return NullRateLimiter()
