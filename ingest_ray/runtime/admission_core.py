"""Admission: which job next, for this pool, now. Ray-free, on an injected clock.

:class:`~ingest_ray.runtime.dispatch_core.DispatcherCore` asks this module at every dispatch:

- **order** (``fair_queue.py``): priority with aging across levels; within a level, weighted
  deficit round robin across tenants (weights from the settings or ``ingest-ray tenant set``);
- **tenant limits**: a tenant at its ``max_in_flight`` (jobs started and not finished) or over
  its ``jobs_per_hour`` (starts in the last hour, counted in 10 s buckets) starts no new job;
  its started jobs go on, its new ones stay queued, and the reason is published;
- **source tokens** (``admission_tokens.py``): a job whose next try calls a rate-limited source
  (``sources.py``) takes a token first, or waits on the timer heap;
- **accelerators**: an accelerator pool (GPUs or a custom resource, and the ``mineru`` pool) is
  offered batches only up to its free actor slots, and its queue is ordered by
  ``ready_at + size_s_per_mb * document MB``, so small documents pass a 500-page one without
  starving it (a big one waits at most its size penalty longer).

It also keeps what the snapshot shows: per tenant in flight, quota use, share of the last
minute's dispatches and recent queue waits.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.runtime.admission_tokens import SourceGate
from ingest_ray.runtime.sources import SourceMap
from ingest_ray.runtime.work import WorkItem
from ingest_ray.tenants import TenantLimits, TenantStats

HOUR_S = 3600.0
BUCKET_S = 10.0
SHARE_WINDOW_S = 60.0


@dataclass
class _Tenant:
    in_flight: int = 0
    #: starts in the last hour: [bucket start, count] oldest first, and their sum
    starts: deque[list[float]] = field(default_factory=deque)
    used: int = 0
    #: dispatched jobs per second of the last minute
    dispatches: deque[list[float]] = field(default_factory=deque)
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    seen_at: float = 0.0

    def expire(self, now: float) -> None:
        while self.starts and self.starts[0][0] <= now - HOUR_S:
            self.used -= int(self.starts.popleft()[1])
        while self.dispatches and self.dispatches[0][0] <= now - SHARE_WINDOW_S:
            self.dispatches.popleft()

    def count(self, series: deque[list[float]], now: float, width: float, n: int = 1) -> None:
        start = now - now % width
        if series and series[-1][0] == start:
            series[-1][1] += n
        else:
            series.append([start, float(n)])


def document_mb(item: WorkItem) -> float:
    """The size of the job's PDF in MB, as ``pdf_fetch`` recorded it (0 when unknown)."""
    fetched = item.outputs.get("pdf_fetch") or {}
    size = fetched.get("pdf_size") if isinstance(fetched, dict) else None
    return float(size) / 1e6 if isinstance(size, int | float) else 0.0


class AdmissionCore:
    """Tenant limits, shares, source tokens and accelerator slots, for one Dispatcher."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        sources: SourceMap | None = None,
        default: TenantLimits | None = None,
        limits: Mapping[str, TenantLimits] | None = None,
        token_ttl_s: float = 1.0,
        size_s_per_mb: float = 1.0,
    ) -> None:
        self.catalog = catalog
        self.sources = sources or SourceMap()
        self.gate = SourceGate(self.sources.limit, ttl_s=token_ttl_s)
        #: whether any tenant has a cap or a quota (if none, picks skip the check)
        self.capped = False
        self.set_limits(default or TenantLimits(), limits or {})
        self.size_s_per_mb = size_s_per_mb
        self._tenants: dict[str, _Tenant] = {}
        self._started: set[str] = set()
        #: held jobs still queued in the ledger (not started), per (tenant, priority): the part
        #: of the ledger's backlog index this Dispatcher already holds
        self.queued_held: Counter[tuple[str, int]] = Counter()
        self._queued: set[str] = set()
        self._slots: dict[str, int] = {}
        self._accelerated = {p.name for p in catalog.pools.values() if p.accelerated}
        self._pool_of = {s.stage: s.pool_name for p in catalog.pipelines.values() for s in p.stages}

    # --- limits -----------------------------------------------------------------------------

    def set_limits(self, default: TenantLimits, limits: Mapping[str, TenantLimits]) -> None:
        """New limits (read at run time); they apply from the next dispatch."""
        self.default, self.limits = default, dict(limits)
        #: the smallest weight any tenant has (a turn of deficit round robin earns a tenant
        #: ``weight / min_weight`` jobs)
        self.min_weight = min(lim.weight for lim in [default, *self.limits.values()])
        self.capped = any(
            lim.max_in_flight is not None or lim.jobs_per_hour is not None
            for lim in [self.default, *self.limits.values()]
        )

    def limits_of(self, tenant: str) -> TenantLimits:
        """``tenant``'s limits: its own, else the defaults."""
        return self.limits.get(tenant, self.default)

    def weight(self, tenant: str) -> float:
        """``tenant``'s weight in the fair share."""
        return self.limits_of(tenant).weight

    def refuses_new(self, tenant: str, now: float) -> bool:
        """Whether ``tenant`` may not start another job now (called at every pick: cheap)."""
        lim = self.limits.get(tenant, self.default)
        if lim.max_in_flight is None and lim.jobs_per_hour is None:
            return False
        state = self._tenant(tenant, now)
        if lim.max_in_flight is not None and state.in_flight >= lim.max_in_flight:
            return True
        if lim.jobs_per_hour is None:
            return False
        state.expire(now)
        return state.used >= lim.jobs_per_hour

    def verdict(self, tenant: str, now: float) -> str | None:
        """Why ``tenant`` starts no new job now, or ``None``."""
        lim = self.limits_of(tenant)
        if lim.max_in_flight is None and lim.jobs_per_hour is None:
            return None
        state = self._tenant(tenant, now)
        if lim.max_in_flight is not None and state.in_flight >= lim.max_in_flight:
            return f"at its in-flight cap: {state.in_flight} of {lim.max_in_flight} jobs running"
        state.expire(now)
        if lim.jobs_per_hour is not None and state.used >= lim.jobs_per_hour:
            next_in = state.starts[0][0] + HOUR_S - now if state.starts else 0.0
            return (
                f"over its quota: {state.used} of {lim.jobs_per_hour} jobs/h started; "
                f"next start in {_duration(next_in)}"
            )
        return None

    # --- the core's hooks ---------------------------------------------------------------------

    def held(self, item: WorkItem, now: float) -> None:
        """A job is held: one that already started counts as in flight."""
        if item.needs_start:
            self._queue_held(item, +1)
        else:
            self._start(item, now, quota=False)

    def dispatched(self, item: WorkItem, now: float) -> None:
        """A job goes out: a new one starts (in flight, quota); its queue wait is recorded."""
        state = self._tenants.get(item.tenant_id) or self._tenant(item.tenant_id, now)
        if item.needs_start:
            self._queue_held(item, -1)
            self._start(item, now, quota=True)
        second = now - now % 1.0
        if state.dispatches and state.dispatches[-1][0] == second:
            state.dispatches[-1][1] += 1
        else:
            state.dispatches.append([second, 1.0])
            state.seen_at = now
        state.waits.append(now - item.ready_at)

    def released(self, item: WorkItem) -> None:
        """A dispatch was not sent and its start not written: the job did not start."""
        if item.needs_start:
            self._unstart(item)
            self._queue_held(item, +1)

    def forget(self, item: WorkItem) -> None:
        """A job is no longer held (finished, failed, cancelled, refused)."""
        self.gate.forget(item.job_id)
        self._unstart(item)
        self._queue_held(item, -1)

    def _queue_held(self, item: WorkItem, change: int) -> None:
        if (change > 0) == (item.job_id in self._queued):
            return
        group = (item.tenant_id, item.priority)
        if change > 0:
            self._queued.add(item.job_id)
            self.queued_held[group] += 1
        else:
            self._queued.discard(item.job_id)
            self.queued_held[group] -= 1
            if self.queued_held[group] <= 0:
                del self.queued_held[group]

    def _unstart(self, item: WorkItem) -> None:
        if item.job_id not in self._started:
            return
        self._started.discard(item.job_id)
        state = self._tenants[item.tenant_id]
        state.in_flight -= 1
        if item.needs_start:  # its start was never written: it used no quota either
            for bucket in reversed(state.starts):
                if bucket[1] > 0:
                    bucket[1] -= 1
                    state.used -= 1
                    break

    def _start(self, item: WorkItem, now: float, *, quota: bool) -> None:
        if item.job_id in self._started:
            return
        self._started.add(item.job_id)
        state = self._tenant(item.tenant_id, now)
        state.in_flight += 1
        if quota:
            state.expire(now)
            state.count(state.starts, now, BUCKET_S)
            state.used += 1

    def _tenant(self, tenant: str, now: float) -> _Tenant:
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant()
        state.seen_at = now
        return state

    # --- sources and accelerators ------------------------------------------------------------

    def token_for(self, item: WorkItem, now: float) -> float | None:
        """Take the token the job's next try needs (``None``: go; it rides along in
        ``item.reserved``), or the clock time to come back for one."""
        spec = self.catalog.pipeline(item.pipeline).stages[item.stage_index]
        item.reserved = ()
        source = self.sources.next_source(item, spec)
        if source is None:
            return None
        when = self.gate.take(item.job_id, source, now)
        if when is None:
            item.reserved = (source,)
        return when

    def keeps_age(self, item: WorkItem) -> bool:
        """A job back from waiting for a token keeps its place by age."""
        return self.gate.waiting_for(item.job_id) is not None

    def order_key(self, stage: str) -> Callable[[WorkItem], float] | None:
        """The lane order of an accelerator pool's stage (``None``: FIFO)."""
        if self._pool_of.get(stage, stage) not in self._accelerated:
            return None
        return lambda item: item.ready_at + self.size_s_per_mb * document_mb(item)

    def budget(self, pool: PoolSpec) -> int:
        """Batches the pool may have out: its budget, and for an accelerator pool no more than
        its actors' slots (so work is not queued inside an actor, where it cannot be
        reordered)."""
        slots = self._slots.get(pool.name)
        if pool.name in self._accelerated and slots is not None:
            return min(pool.max_in_flight, slots)
        return pool.max_in_flight

    def set_slots(self, slots: Mapping[str, int]) -> None:
        """Call slots of each pool's live actors (from the launcher)."""
        self._slots = dict(slots)

    # --- what the snapshot shows ---------------------------------------------------------------

    def tenant_stats(self, now: float, waiting: Counter[str]) -> dict[str, TenantStats]:
        """Every tenant seen in the last hour (``waiting``: jobs held per tenant)."""
        stale = [t for t, s in self._tenants.items() if s.seen_at < now - HOUR_S]
        for tenant in stale:
            state = self._tenants[tenant]
            if not (state.in_flight or state.used or waiting.get(tenant)):
                del self._tenants[tenant]
        for state in self._tenants.values():
            state.expire(now)
        dispatched = {t: sum(int(c) for _, c in s.dispatches) for t, s in self._tenants.items()}
        total = sum(dispatched.values())
        active = [t for t, s in self._tenants.items() if waiting.get(t) or s.in_flight]
        weights = sum(self.weight(t) for t in active)
        out = {}
        for tenant, state in self._tenants.items():
            lim = self.limits_of(tenant)
            ordered = sorted(state.waits)
            out[tenant] = TenantStats(
                tenant_id=tenant, weight=lim.weight, max_in_flight=lim.max_in_flight,
                jobs_per_hour=lim.jobs_per_hour, in_flight=state.in_flight,
                waiting=waiting.get(tenant, 0), quota_used=state.used,
                share=round(dispatched[tenant] / total, 4) if total else 0.0,
                fair_share=round(lim.weight / weights, 4) if tenant in active else 0.0,
                wait_p50_s=_quantile(ordered, 0.50), wait_p99_s=_quantile(ordered, 0.99),
                blocked=self.verdict(tenant, now),
            )  # fmt: skip
        return out


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
