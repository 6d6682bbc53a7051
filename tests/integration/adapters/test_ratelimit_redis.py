"""The cluster-wide token bucket on a real Redis: many limiters, one budget, batched takes."""

from __future__ import annotations

import asyncio
import threading

import redis

from ingest_ray.adapters.ratelimit import Grant, RateSpec, RedisRateLimiter

RATE, BURST = 20.0, 2.0


def _grants_in_thread(
    redis_url: str, prefix: str, tasks: int, per_task: int, out: list[float], lock: threading.Lock
) -> None:
    """One 'actor': its own limiter, connection pool and event loop, several concurrent callers."""

    async def main() -> None:
        limiter = RedisRateLimiter(redis_url, {"openalex": RateSpec(RATE, BURST)}, prefix=prefix)

        async def caller() -> None:
            got = 0
            while got < per_task:  # the caller waits, as the Dispatcher does: never the bucket
                decision = await limiter.try_acquire("openalex")
                if decision.granted:
                    got += 1
                    with lock:
                        out.append(decision.at_s)
                else:
                    await asyncio.sleep(decision.wait_s)

        try:
            await asyncio.gather(*(caller() for _ in range(tasks)))
        finally:
            await limiter.aclose()

    asyncio.run(main())


def test_redis_limiter_instances_together_stay_within_rate(
    redis_url: str, redis_prefix: str
) -> None:
    granted: list[float] = []
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=_grants_in_thread, args=(redis_url, redis_prefix, 3, 4, granted, lock)
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(granted) == 4 * 3 * 4
    times = sorted(granted)  # Redis server clock: independent of client scheduling
    for window in (0.25, 0.5, 1.0):
        worst = max(sum(1 for t in times if start <= t < start + window) for start in times)
        assert worst <= BURST + RATE * window, (window, worst)
    # and the budget was actually used: 48 grants need at least (48 - burst) / rate seconds
    assert times[-1] - times[0] >= (len(times) - BURST) / RATE - 1e-3


def test_redis_limiter_keys_sources_apart_and_expires_them(
    redis_url: str, redis_prefix: str
) -> None:
    async def main() -> tuple[bool, bool]:
        limiter = RedisRateLimiter(
            redis_url,
            {"core": RateSpec(rate=0.01), "unpaywall": RateSpec(rate=0.01)},
            prefix=redis_prefix,
        )
        try:
            first = await limiter.try_acquire("core")
            second = await limiter.try_acquire("core")
            other = await limiter.try_acquire("unpaywall")
            assert second.wait_s > 90
            return first.granted and not second.granted, other.granted
        finally:
            await limiter.aclose()

    core_limited, unpaywall_free = asyncio.run(main())
    assert core_limited and unpaywall_free
    client = redis.Redis.from_url(redis_url)
    try:
        ttl = client.pttl(f"{redis_prefix}ratelimit:core")
        assert 0 < ttl <= 101_000
        assert client.hget(f"{redis_prefix}ratelimit:core", "tokens") is not None
    finally:
        client.close()


def test_redis_take_many_asks_every_source_in_one_round_trip(
    redis_url: str, redis_prefix: str
) -> None:
    async def main() -> tuple[dict[str, Grant], dict[str, Grant]]:
        limiter = RedisRateLimiter(
            redis_url,
            {"core": RateSpec(rate=0.01, burst=2), "unpaywall": RateSpec(rate=100, burst=5)},
            prefix=redis_prefix,
        )
        try:
            first = await limiter.take_many({"core": 3, "unpaywall": 4, "unlimited": 9})
            second = await limiter.take_many({"core": 1})
            return first, second
        finally:
            await limiter.aclose()

    first, second = asyncio.run(main())
    assert set(first) == {"core", "unpaywall"}  # an unlimited source takes nothing
    assert first["core"].granted == 2 and first["core"].wait_s > 90
    assert first["unpaywall"] == Grant(4, 0.0)
    assert second["core"].granted == 0


def _script_exists_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))


def test_redis_take_many_sends_evalsha_at_once_and_reloads_a_flushed_script(
    redis_url: str, redis_prefix: str
) -> None:
    # redis-py's pipeline asks SCRIPT EXISTS before each execute: a second round trip per take
    client = redis.Redis.from_url(redis_url)
    before = _script_exists_calls(client)

    async def main() -> list[int]:
        limiter = RedisRateLimiter(redis_url, {"core": RateSpec(rate=100, burst=50)},
                                   prefix=redis_prefix)  # fmt: skip
        try:
            granted = [(await limiter.take_many({"core": 2}))["core"].granted for _ in range(3)]
            client.script_flush()  # as after a Redis restart: the next take loads it again
            granted.append((await limiter.take_many({"core": 2}))["core"].granted)
            return granted
        finally:
            await limiter.aclose()

    assert asyncio.run(main()) == [2, 2, 2, 2]
    assert _script_exists_calls(client) == before
    client.close()
