"""The Dispatcher's admission I/O, once per round, Ray-free (the store and the bank are injected).

- **tokens**: what the jobs waiting on rate-limited sources are due, asked of the shared
  buckets in one batched round trip (``TokenBank.take_many``), only when a bucket said its next
  token should be there;
- **limits**: tenants' weights, caps and quotas re-read every ``limits_s`` (settings, overridden
  by the records ``ingest-ray tenant set`` writes), so a change applies without a restart;
- **slots**: the live call slots of each pool (accelerator admission);
- **backlog**: the ledger's queued jobs beyond memory, pulled in fair order (``backlog.py``);
- **visibility**: every ``publish_s`` the snapshot (tenants' shares, in flight, quota use,
  waits; sources' lines) goes to Redis for ``ingest-ray status --tenants`` and ``GET
  /tenants``, and the same figures to the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis

from ingest_ray.adapters.ratelimit import TokenBank
from ingest_ray.keys import RedisKeys
from ingest_ray.metrics import RuntimeMetrics
from ingest_ray.tenants import AdmissionSnapshot, TenantLimits, parse_all

if TYPE_CHECKING:
    from ingest_ray.runtime.loop import DispatchLoop


class AdmissionStore(Protocol):
    """Where tenants' limits are read and the snapshot is published."""

    async def read_limits(self) -> dict[str, TenantLimits]: ...
    async def publish(self, snapshot: AdmissionSnapshot) -> None: ...


class RedisAdmissionStore:
    """The store in Redis: ``RedisKeys.tenant_limits`` and ``RedisKeys.admission(runtime)``."""

    def __init__(self, client: aioredis.Redis, prefix: str, runtime: str) -> None:
        self._r = client
        self._keys = RedisKeys(prefix)
        self._runtime = runtime

    async def read_limits(self) -> dict[str, TenantLimits]:
        """Every tenant's own record."""
        return parse_all(await self._r.hgetall(self._keys.tenant_limits))

    async def publish(self, snapshot: AdmissionSnapshot) -> None:
        """The snapshot, kept for 30 s (an old one means the Dispatcher is gone)."""
        await self._r.set(self._keys.admission(self._runtime), snapshot.model_dump_json(), ex=30)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._r.aclose()


@dataclass(frozen=True)
class AdmissionTimings:
    """How often each part runs (seconds)."""

    limits_s: float = 2.0
    publish_s: float = 1.0
    slots_s: float = 1.0


class AdmissionSync:
    """Runs the admission I/O of one Dispatcher (see the module doc)."""

    def __init__(
        self,
        *,
        runtime: str,
        bank: TokenBank | None = None,
        store: AdmissionStore | None = None,
        default: TenantLimits | None = None,
        limits: Mapping[str, TenantLimits] | None = None,
        timings: AdmissionTimings | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.bank, self.store = bank, store
        self.default = default or TenantLimits()
        self.settings_limits = dict(limits or {})
        self.timings = timings or AdmissionTimings()
        self.wall = wall
        self.error: str | None = None
        self._due = {"limits": 0.0, "publish": 0.0, "slots": 0.0}

    async def tick(self, loop: DispatchLoop) -> None:
        """One round's admission I/O; a failing part is reported and tried again later."""
        now = loop.clock()
        admission = loop.core.admission
        await self._tokens(loop, now)
        if self._is_due("limits", now, self.timings.limits_s):
            await self._limits(loop)
        if self._is_due("slots", now, self.timings.slots_s):
            admission.set_slots({name: s.slots for name, s in loop.launcher.stats().items()})
        recovery = loop.recovery
        await recovery.backlog.fill(loop.core, recovery.look_up)
        if self._is_due("publish", now, self.timings.publish_s):
            await self._publish(loop, now)

    async def _tokens(self, loop: DispatchLoop, now: float) -> None:
        gate = loop.core.admission.gate
        wants = gate.wants(now)
        if not wants or self.bank is None:
            return
        try:
            grants = await self.bank.take_many(wants)
        except Exception as exc:  # the jobs keep waiting; ask again shortly
            gate.failed(now)
            self.error = f"rate-limit tokens: {type(exc).__name__}: {exc}"
            loop.report_error("tokens", exc)
            return
        self.error = None
        for source, grant in grants.items():
            gate.granted(source, grant, now)

    async def _limits(self, loop: DispatchLoop) -> None:
        stored: dict[str, TenantLimits] = {}
        if self.store is not None:
            try:
                stored = await self.store.read_limits()
            except Exception as exc:  # keep the limits in force until Redis answers
                loop.report_error("tenant_limits", exc)
                return
        loop.core.admission.set_limits(self.default, {**self.settings_limits, **stored})

    async def _publish(self, loop: DispatchLoop, now: float) -> None:
        core, metrics = loop.core, loop.metrics
        admission = core.admission
        tenants = admission.tenant_stats(now, core.waiting_by_tenant())
        sources = admission.gate.stats(now)
        admission.gate.prune()
        backlog = loop.recovery.backlog.unheld
        snapshot = AdmissionSnapshot(
            runtime=self.runtime, at=self.wall(), tenants=tenants, sources=sources,
            backlog=backlog, error=self.error,
        )  # fmt: skip
        _export(metrics, snapshot)
        if self.store is not None:
            try:
                await self.store.publish(snapshot)
            except Exception as exc:
                loop.report_error("admission_publish", exc)

    def _is_due(self, name: str, now: float, every: float) -> bool:
        if now < self._due[name]:
            return False
        self._due[name] = now + every
        return True


def _export(metrics: RuntimeMetrics, snapshot: AdmissionSnapshot) -> None:
    for tenant, t in snapshot.tenants.items():
        metrics.set("ingest_tenant_in_flight", tenant, value=t.in_flight)
        metrics.set("ingest_tenant_waiting", tenant, value=t.waiting)
        metrics.set("ingest_tenant_share", tenant, value=t.share)
        metrics.set("ingest_tenant_fair_share", tenant, value=t.fair_share)
        metrics.set("ingest_tenant_quota_used", tenant, value=t.quota_used)
        metrics.set("ingest_tenant_blocked", tenant, value=1.0 if t.blocked else 0.0)
        metrics.set("ingest_tenant_wait_p50_seconds", tenant, value=t.wait_p50_s or 0.0)
        metrics.set("ingest_tenant_wait_p99_seconds", tenant, value=t.wait_p99_s or 0.0)
    for source, s in snapshot.sources.items():
        metrics.set("ingest_source_waiting", source, value=s.waiting)
    metrics.set("ingest_ledger_backlog", value=snapshot.backlog)
