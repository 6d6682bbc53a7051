"""The in-process token bucket (the Redis one is tested in tests/integration/adapters)."""

from __future__ import annotations

import asyncio

import pytest

from ingest_ray.adapters.errors import RateLimitWaitError
from ingest_ray.adapters.ratelimit import (
    LocalRateLimiter,
    NullRateLimiter,
    RateSpec,
    RedisRateLimiter,
    rate_limiter_from_settings,
)
from ingest_ray.adapters.replay import adapter_settings_for


class FakeClock:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


def test_local_limiter_spends_burst_then_paces_at_rate() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(
        {"openalex": RateSpec(rate=2.0, burst=3.0)}, sleep=clock.sleep, clock=clock
    )

    async def main() -> list[float]:
        granted = []
        for _ in range(7):
            await limiter.acquire("openalex")
            granted.append(clock.now)
        return granted

    granted = asyncio.run(main())
    assert granted[:3] == [100.0, 100.0, 100.0]
    # four more tokens at 2/s take at least two seconds to refill; jitter adds at most 10%
    assert 2.0 - 1e-9 <= granted[-1] - granted[2] <= 2.0 * 1.1 + 1e-9
    # never more than burst + rate * window grants in any window
    for start in granted:
        in_window = [t for t in granted if start <= t < start + 1.0]
        assert len(in_window) <= 3 + 2


def test_local_limiter_gives_up_after_max_wait() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(
        {"core": RateSpec(rate=0.1)}, max_wait_s=5.0, sleep=clock.sleep, clock=clock
    )

    async def main() -> None:
        await limiter.acquire("core")
        await limiter.acquire("core")

    with pytest.raises(RateLimitWaitError) as info:
        asyncio.run(main())
    assert info.value.retryable
    assert info.value.retry_after == pytest.approx(10.0)
    assert clock.sleeps == []


def test_local_limiter_does_not_limit_unknown_sources() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter({"core": RateSpec(rate=0.001)}, sleep=clock.sleep, clock=clock)

    async def main() -> None:
        for _ in range(10):
            await limiter.acquire("openalex")

    asyncio.run(main())
    assert clock.sleeps == []


def test_rate_limiter_from_settings_picks_backend() -> None:
    base = "http://127.0.0.1:9"
    redis_limiter = rate_limiter_from_settings(
        adapter_settings_for(base, rate_limit_backend="redis", redis_prefix="x:")
    )
    assert isinstance(redis_limiter, RedisRateLimiter)
    assert redis_limiter.key("core") == "x:ratelimit:core"
    assert isinstance(
        rate_limiter_from_settings(adapter_settings_for(base, rate_limit_backend="local")),
        LocalRateLimiter,
    )
    assert isinstance(rate_limiter_from_settings(adapter_settings_for(base)), NullRateLimiter)
    asyncio.run(redis_limiter.aclose())
