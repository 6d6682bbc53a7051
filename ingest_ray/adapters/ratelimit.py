"""Per-source rate limits: token buckets in Redis shared by every process, or one per process.

Nothing here waits. The Dispatcher takes the token a job's next call needs *before* it
dispatches the job (:meth:`TokenBank.take_many`, one round trip for every source of a dispatch
round; a job without a token waits in the Dispatcher's timer heap, holding no worker) and hands
the stage what it took (``StageInput.reserved``, made current by :func:`reserved_tokens`). A
stage's further calls take a token from the same bucket or raise :class:`RateLimitWaitError`
with ``retry_after`` at once, and the job is retried by the runtime.

The Redis bucket lives at ``{prefix}ratelimit:{source}`` (a hash of ``tokens`` and ``ts``) and is
refilled and spent by one Lua script using the server's clock, so any number of limiter
instances on any number of machines together stay within a source's rate: in any window of
``T`` seconds at most ``burst + rate * T`` tokens are granted. Publisher hosts of PDF downloads
are sources named ``host:{hostname}`` (:func:`host_source`).
"""

from __future__ import annotations

import abc
import contextvars
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

from ingest_ray.adapters.errors import RateLimitWaitError
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.errors import ServiceUnavailableError
from ingest_ray.keys import RedisKeys

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

HOST_PREFIX = "host:"

# KEYS[1] bucket; ARGV rate (tokens/s), burst (capacity), wanted. Returns
# {granted, wait_us (until the next token, 0 when all were granted), now_us}.
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
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
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
local wait_us = 0
if granted < wanted then
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
    """One try at taking a token: granted or not, how long until one is free, the clock used."""

    granted: bool
    wait_s: float
    at_s: float


@dataclass(frozen=True, slots=True)
class Grant:
    """Tokens of one source taken in one go: how many, and (when fewer than asked) how long
    until the bucket has the next one; ``at_s`` is the bucket's clock (Redis: the server's)."""

    granted: int
    wait_s: float
    at_s: float = field(default=0.0, compare=False)


def host_source(url: str | None) -> str | None:
    """The rate-limit source of a download: ``host:{hostname}`` (``None`` without a host)."""
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return f"{HOST_PREFIX}{host.lower()}" if host else None


@dataclass(frozen=True)
class SourceRates:
    """The budget of every source: named ones, and publisher hosts (a default and overrides)."""

    named: Mapping[str, RateSpec] = field(default_factory=dict)
    host: RateSpec | None = None
    hosts: Mapping[str, RateSpec] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: AdapterSettings) -> SourceRates:
        """The budgets ``settings`` give (none at all with ``rate_limit_backend="none"``)."""
        if settings.rate_limit_backend == "none":
            return cls()
        burst = settings.rate_limit_burst
        return cls(
            named={s: RateSpec(r, burst) for s, r in settings.rates().items()},
            host=RateSpec(settings.host_rate_per_s, burst),
            hosts={h.lower(): RateSpec(r, burst) for h, r in settings.host_rates.items()},
        )

    def spec(self, source: str) -> RateSpec | None:
        """The budget of ``source``, ``None`` when it is not limited."""
        if source.startswith(HOST_PREFIX):
            return self.hosts.get(source[len(HOST_PREFIX) :], self.host)
        return self.named.get(source)


def _rates(specs: Mapping[str, RateSpec] | SourceRates) -> SourceRates:
    return specs if isinstance(specs, SourceRates) else SourceRates(named=dict(specs))


# --- tokens the Dispatcher took for this try ---------------------------------------------------

_RESERVED: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "ingest_ray_reserved_tokens", default=None
)


@contextmanager
def reserved_tokens(sources: Iterable[str]) -> Iterator[None]:
    """Make the tokens the Dispatcher took for this try current: the first :meth:`acquire` of
    each source spends one of them instead of asking the bucket again."""
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    token = _RESERVED.set(counts)
    try:
        yield
    finally:
        _RESERVED.reset(token)


def _spend_reserved(source: str) -> bool:
    counts = _RESERVED.get()
    if not counts or counts.get(source, 0) <= 0:
        return False
    counts[source] -= 1
    return True


# --- the limiters -------------------------------------------------------------------------------


@runtime_checkable
class RateLimiter(Protocol):
    """What the HTTP clients use: a token now, or an error that says how long to wait."""

    async def acquire(self, source: str) -> None:
        """Return when ``source`` may be called now; raise :class:`RateLimitWaitError` (with
        ``retry_after``) when it may not. Never waits."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class TokenBank(Protocol):
    """What the Dispatcher uses: many sources' tokens in one round trip."""

    rates: SourceRates

    async def take_many(self, wants: Mapping[str, int]) -> dict[str, Grant]:
        """Take up to ``wants[source]`` tokens of each source (limited sources only)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class _Buckets(abc.ABC):
    """Shared: reservations first, then one non-blocking try at the bucket."""

    def __init__(self, specs: Mapping[str, RateSpec] | SourceRates) -> None:
        self.rates = _rates(specs)

    @abc.abstractmethod
    async def take_many(self, wants: Mapping[str, int]) -> dict[str, Grant]:
        """Take up to ``wants[source]`` tokens of each limited source."""

    async def try_acquire(self, source: str) -> TokenDecision:
        """Take one token of ``source`` if one is free, without waiting."""
        grant = (await self.take_many({source: 1})).get(source, Grant(1, 0.0, time.time()))
        return TokenDecision(grant.granted > 0, grant.wait_s, grant.at_s)

    async def acquire(self, source: str) -> None:
        """A reserved token, a free one, or :class:`RateLimitWaitError` (unknown sources are
        not limited)."""
        if _spend_reserved(source) or self.rates.spec(source) is None:
            return
        decision = await self.try_acquire(source)
        if not decision.granted:
            raise RateLimitWaitError(
                f"no {source} rate-limit token free (next in {decision.wait_s:.2f}s)",
                retry_after=decision.wait_s,
            )

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Nothing to release by default."""


class RedisRateLimiter(_Buckets):
    """The cluster-wide limiter: one Redis token bucket per source."""

    def __init__(
        self,
        redis_url: str,
        specs: Mapping[str, RateSpec] | SourceRates,
        *,
        prefix: str = "ir:",
    ) -> None:
        super().__init__(specs)
        self._redis_url = redis_url
        self._keys = RedisKeys(prefix)
        self._client: aioredis.Redis | None = None
        self._script: object | None = None

    def key(self, source: str) -> str:
        """The Redis key of ``source``'s bucket."""
        return self._keys.source_rate(source)

    async def take_many(self, wants: Mapping[str, int]) -> dict[str, Grant]:
        """Run the bucket script once per limited source, all in one pipelined round trip."""
        asks = [(s, n, spec) for s, n in wants.items() if n > 0 and (spec := self.rates.spec(s))]
        if not asks:
            return {}
        # redis-py loads only in a process that takes from a shared bucket
        import redis.asyncio as aioredis  # noqa: PLC0415
        from redis.exceptions import RedisError  # noqa: PLC0415

        from ingest_ray.ledger.redis_scripts import run_pipelined_async  # noqa: PLC0415

        if self._client is None:
            self._client = aioredis.Redis.from_url(self._redis_url)
            self._script = self._client.register_script(_TAKE_SCRIPT)
        script = cast("AsyncScript", self._script)
        calls = [
            (script, [self.key(source)], [repr(spec.rate), repr(spec.burst), n])
            for source, n, spec in asks
        ]
        try:  # EVALSHA at once: no SCRIPT EXISTS round trip first, as Pipeline would send
            replies = await run_pipelined_async(self._client, calls)
        except RedisError as exc:
            raise ServiceUnavailableError(f"rate limiter: Redis failed: {exc}") from exc
        return {
            source: Grant(int(reply[0]), int(reply[1]) / 1e6, int(reply[2]) / 1e6)
            for (source, _, _), reply in zip(asks, replies, strict=True)
        }

    async def aclose(self) -> None:
        """Close the Redis connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class LocalRateLimiter(_Buckets):
    """The same token buckets in process memory (one process only; tests, single-node runs)."""

    def __init__(
        self,
        specs: Mapping[str, RateSpec] | SourceRates,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(specs)
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}

    async def take_many(self, wants: Mapping[str, int]) -> dict[str, Grant]:
        """Refill each bucket from the elapsed time, then spend what it has, up to the ask."""
        out: dict[str, Grant] = {}
        now = self._clock()
        for source, n in wants.items():
            spec = self.rates.spec(source)
            if spec is None or n <= 0:
                continue
            tokens, ts = self._state.get(source, (spec.burst, now))
            tokens = min(spec.burst, tokens + max(0.0, now - ts) * spec.rate)
            granted = min(n, math.floor(tokens + 1e-9))
            tokens -= granted
            self._state[source] = (tokens, now)
            wait = 0.0 if granted == n else max(0.0, 1.0 - tokens) / spec.rate
            out[source] = Grant(granted, wait, now)
        return out


class NullRateLimiter:
    """No limits at all (replay servers, tests)."""

    rates = SourceRates()

    async def acquire(self, source: str) -> None:
        """Always allowed."""

    async def take_many(self, wants: Mapping[str, int]) -> dict[str, Grant]:
        """Nothing is limited, so nothing is taken."""
        return {}

    async def aclose(self) -> None:
        """Nothing to release."""


def rate_limiter_from_settings(
    settings: AdapterSettings,
) -> RedisRateLimiter | LocalRateLimiter | NullRateLimiter:
    """The limiter the settings ask for; nothing connects until it is first used."""
    rates = SourceRates.from_settings(settings)
    if settings.rate_limit_backend == "redis":
        return RedisRateLimiter(settings.redis_url, rates, prefix=settings.redis_prefix)
    if settings.rate_limit_backend == "local":
        return LocalRateLimiter(rates)
    return NullRateLimiter()
