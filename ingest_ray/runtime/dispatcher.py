"""The Dispatcher actor: a thin shell around :class:`~ingest_ray.runtime.loop.DispatchLoop`.

It builds the loop's parts (the ledger, its batching writer, the Ray pools, the inbox, the
clock, admission: tenant limits, the shared rate-limit buckets, the snapshot store), starts the
loop on first use (so a Dispatcher that Ray restarted recovers by itself as
soon as anyone calls it) and answers the runtime's calls. Detached and restartable: see
``runtime.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import ray
import redis
import redis.asyncio as aioredis

from ingest_ray.adapters.ratelimit import rate_limiter_from_settings
from ingest_ray.config import Settings
from ingest_ray.control import ControlInbox
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.metrics import RuntimeMetrics, Snapshot
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.actors import control_options
from ingest_ray.runtime.admission_core import AdmissionCore
from ingest_ray.runtime.admission_sync import AdmissionSync, RedisAdmissionStore
from ingest_ray.runtime.dispatch_core import DispatcherCore
from ingest_ray.runtime.ledger_cache import BatchingWriter
from ingest_ray.runtime.loop import DispatchLoop, LoopTimings
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.parts import LoopStats
from ingest_ray.runtime.pools import RayLauncher
from ingest_ray.runtime.sources import SourceMap, adapter_settings
from ingest_ray.runtime.work import WorkItem


class Dispatcher:
    """Priority dispatch, retries, leases, cancellation and recovery for one runtime."""

    def __init__(self, catalog: Catalog, settings: Settings, options: RuntimeOptions) -> None:
        admission = AdmissionCore(
            catalog, sources=SourceMap.from_settings(settings),
            default=settings.tenant_default, limits=settings.tenant_limits,
        )  # fmt: skip
        core = DispatcherCore(
            catalog, clock=time.monotonic, aging_s=options.aging_s,
            high_watermark=options.high_watermark, low_watermark=options.low_watermark,
            admission=admission,
        )  # fmt: skip
        self._ledger = open_ledger(settings)
        self._writer = BatchingWriter(self._ledger)  # transitions of many jobs per round trip
        inbox = ControlInbox(
            redis.Redis.from_url(settings.redis_url, decode_responses=True),
            RedisKeys(settings.redis_prefix),
            options.name,
        )
        launcher = RayLauncher(
            catalog, settings, runtime=options.name, namespace=options.namespace,
            idle_s=options.pool_idle_s,
        )  # fmt: skip
        self.loop = DispatchLoop(
            catalog, settings, core=core, ledger=self._ledger,
            writer=self._writer, launcher=launcher, inbox=inbox,
            metrics=RuntimeMetrics(mirror_to_ray=True),
            timings=LoopTimings(inbox_s=options.inbox_poll_s, reconcile_s=options.reconcile_s),
            admission=self._admission(settings, options),
        )  # fmt: skip
        backlog = self.loop.recovery.backlog
        backlog.intake_high = options.backlog_high_watermark
        backlog.intake_low = options.backlog_low_watermark
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None

    def _admission(self, settings: Settings, options: RuntimeOptions) -> AdmissionSync:
        self._bank = rate_limiter_from_settings(adapter_settings(settings))
        self._store = RedisAdmissionStore(
            aioredis.Redis.from_url(settings.redis_url), settings.redis_prefix, options.name
        )
        return AdmissionSync(
            runtime=options.name, bank=self._bank, store=self._store,
            default=settings.tenant_default, limits=settings.tenant_limits,
        )  # fmt: skip

    async def start(self) -> int:
        """Recover from the ledger and start the loop, once; answers jobs recovered."""
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._task is None:
                await self.loop.start()
                self._task = asyncio.create_task(self.loop.run(self._stop))
        return self.loop.stats_.recovered

    async def submit(self, items: Sequence[WorkItem], recheck: Sequence[str] = ()) -> bool:
        """Take newly admitted jobs (while the Dispatcher is full they stay queued in the
        ledger and are pulled in fair order later) and look up ``recheck`` jobs in the ledger;
        answers whether intake should pause (the ledger's backlog passed its high mark)."""
        await self.start()
        core, backlog = self.loop.core, self.loop.recovery.backlog
        if backlog.holds(core):
            core.admit(items)
        else:
            backlog.added(len(items))
        self.loop.recovery.look_up(j for j in recheck if not core.holds(j))
        self.loop.wake()
        return backlog.intake_paused

    async def paused(self) -> bool:
        """Whether intake should stay paused (backpressure)."""
        await self.start()
        return self.loop.recovery.backlog.intake_paused

    async def stats(self) -> LoopStats:
        """What is held, in flight and waiting; pools; errors."""
        return self.loop.stats()

    async def metrics_snapshot(self) -> Snapshot:
        """Counters and histograms for the worker's ``/metrics``."""
        return self.loop.metrics.snapshot()

    async def drain(self, grace_s: float) -> int:
        """Stop launching and let calls finish for up to ``grace_s``; answers calls handed back."""
        return await self.loop.drain(grace_s)

    async def undrain(self) -> None:
        """Launch stages again after :meth:`drain`."""
        self.loop.draining = False
        self.loop.wake()

    async def shutdown(self) -> None:
        """Stop the loop and the pools."""
        self._stop.set()
        self.loop.wake()
        if self._task is not None:
            await self._task
        self.loop.launcher.close()
        self._writer.close()
        self._ledger.close()
        await self._bank.aclose()
        await self._store.aclose()


RemoteDispatcher = ray.remote(Dispatcher)


def dispatcher_actor(catalog: Catalog, settings: Settings, options: RuntimeOptions) -> Any:
    """The runtime's Dispatcher, created when it does not exist."""
    return RemoteDispatcher.options(
        name=options.dispatcher_name, namespace=options.namespace, max_concurrency=1000,
        **control_options(settings),
    ).remote(catalog, settings, options)  # fmt: skip
