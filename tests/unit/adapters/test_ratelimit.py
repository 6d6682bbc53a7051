"""The in-process token bucket, reservations and sources (the Redis bucket is tested in
tests/integration/adapters). Nothing here waits: a missing token is an error that says when."""

from __future__ import annotations

import asyncio

import pytest

from ingest_ray.adapters.errors import RateLimitWaitError
from ingest_ray.adapters.ratelimit import (
    Grant,
    LocalRateLimiter,
    NullRateLimiter,
    RateSpec,
    RedisRateLimiter,
    SourceRates,
    host_source,
    rate_limiter_from_settings,
    reserved_tokens,
)
from ingest_ray.adapters.replay import adapter_settings_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_local_bucket_grants_its_burst_then_at_its_rate() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter({"openalex": RateSpec(rate=2.0, burst=3.0)}, clock=clock)
    assert asyncio.run(limiter.take_many({"openalex": 5})) == {"openalex": Grant(3, 0.5)}
    clock.now += 1.0  # two tokens refilled
    assert asyncio.run(limiter.take_many({"openalex": 5})) == {"openalex": Grant(2, 0.5)}
    clock.now += 10.0  # refills only up to the burst
    assert asyncio.run(limiter.take_many({"openalex": 2}))["openalex"] == Grant(2, 0.0)
    assert asyncio.run(limiter.take_many({"openalex": 5}))["openalex"].granted == 1


def test_local_acquire_never_waits_and_says_how_long_to_wait() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter({"core": RateSpec(rate=0.1)}, clock=clock)

    async def main() -> None:
        await limiter.acquire("core")
        await limiter.acquire("core")

    with pytest.raises(RateLimitWaitError) as info:
        asyncio.run(main())
    assert info.value.retryable
    assert info.value.retry_after == pytest.approx(10.0)


def test_reserved_tokens_are_spent_before_the_bucket_and_only_once() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter({"core": RateSpec(rate=0.1)}, clock=clock)

    async def main() -> int:
        await limiter.take_many({"core": 1})  # the Dispatcher took the only token
        calls = 0
        with reserved_tokens(["core"]):
            await limiter.acquire("core")
            calls += 1
            await limiter.acquire("core")  # the reservation is spent: the bucket is empty
            calls += 1
        return calls

    with pytest.raises(RateLimitWaitError):
        asyncio.run(main())


def test_unknown_sources_are_not_limited_and_hosts_have_their_own_budget() -> None:
    rates = SourceRates(
        named={"core": RateSpec(0.001)}, host=RateSpec(2.0), hosts={"slow.org": RateSpec(0.5)}
    )
    limiter = LocalRateLimiter(rates, clock=FakeClock())

    async def main() -> None:
        for _ in range(10):
            await limiter.acquire("openalex")

    asyncio.run(main())
    assert host_source("https://Slow.ORG/a.pdf") == "host:slow.org"
    assert host_source("not a url") is None
    assert rates.spec("host:slow.org") == RateSpec(0.5)
    assert rates.spec("host:fast.org") == RateSpec(2.0)
    assert rates.spec("openalex") is None


def test_rate_limiter_from_settings_picks_backend() -> None:
    base = "http://127.0.0.1:9"
    redis_limiter = rate_limiter_from_settings(
        adapter_settings_for(base, rate_limit_backend="redis", redis_prefix="x:")
    )
    assert isinstance(redis_limiter, RedisRateLimiter)
    assert redis_limiter.key("core") == "x:ratelimit:core"
    assert redis_limiter.rates.spec("host:example.org") is not None
    local = rate_limiter_from_settings(adapter_settings_for(base, rate_limit_backend="local"))
    assert isinstance(local, LocalRateLimiter)
    assert isinstance(rate_limiter_from_settings(adapter_settings_for(base)), NullRateLimiter)
    asyncio.run(redis_limiter.aclose())
