"""Per-tenant request budget: a token bucket in Redis shared by every API replica.

The bucket (``{prefix}api:rate:{tenant}``) is refilled and spent by one Lua script on the server's
clock, so all replicas together grant at most ``burst + rate * T`` requests in any ``T`` seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

import redis.asyncio as aioredis

from ingest_ray.keys import RedisKeys

# KEYS[1] bucket; ARGV rate/s, burst. Returns {granted, wait_us}.
_SCRIPT = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(s[1]) or burst, tonumber(s[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000000) end
local granted, wait_us = 0, 0
if tokens >= 1 then tokens = tokens - 1; granted = 1
else wait_us = math.ceil((1 - tokens) * 1000000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'ts', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait_us}
"""


class TenantRateLimiter:
    """Take one request token for a tenant, or say how long to wait. ``rate_per_s <= 0`` turns
    limiting off."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str, rate_per_s: float, burst: float
    ) -> None:
        self._r = client
        self._prefix = prefix
        self._rate = rate_per_s
        self._burst = max(1.0, burst)
        self._script = client.register_script(_SCRIPT)

    def key(self, tenant_id: str) -> str:
        """The Redis key of ``tenant_id``'s bucket."""
        return RedisKeys(self._prefix).api_rate(tenant_id)

    async def take(self, tenant_id: str) -> float:
        """0.0 when the request may go ahead, else the seconds until a token is free."""
        if self._rate <= 0:
            return 0.0
        script = cast("Callable[..., Awaitable[list[int]]]", self._script)
        granted, wait_us = await script(
            keys=[self.key(tenant_id)], args=[repr(self._rate), repr(self._burst)]
        )
        return 0.0 if int(granted) else max(int(wait_us) / 1e6, 0.001)
