"""The Dispatcher actor: a thin shell around :class:`~ingest_ray.runtime.loop.DispatchLoop`.

It builds the loop's parts (the ledger, the LedgerCache writer, the Ray pools, the inbox, the
clock), starts the loop on first use (so a Dispatcher that Ray restarted recovers by itself as
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

from ingest_ray.config import Settings
from ingest_ray.control import ControlInbox
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.metrics import RuntimeMetrics, Snapshot
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.actors import control_options
from ingest_ray.runtime.dispatch_core import DispatcherCore
from ingest_ray.runtime.ledger_cache import CacheWriter
from ingest_ray.runtime.loop import DispatchLoop, LoopTimings
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.parts import LoopStats
from ingest_ray.runtime.pools import RayLauncher
from ingest_ray.runtime.work import WorkItem


class Dispatcher:
    """Priority dispatch, retries, leases, cancellation and recovery for one runtime."""

    def __init__(self, catalog: Catalog, settings: Settings, options: RuntimeOptions) -> None:
        core = DispatcherCore(
            catalog, clock=time.monotonic, aging_s=options.aging_s,
            high_watermark=options.high_watermark, low_watermark=options.low_watermark,
        )  # fmt: skip
        self._ledger = open_ledger(settings)
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
            writer=CacheWriter(settings, options), launcher=launcher, inbox=inbox,
            metrics=RuntimeMetrics(mirror_to_ray=True),
            timings=LoopTimings(inbox_s=options.inbox_poll_s, reconcile_s=options.reconcile_s),
        )  # fmt: skip
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None

    async def start(self) -> int:
        """Recover from the ledger and start the loop, once; answers jobs recovered."""
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._task is None:
                await self.loop.start()
                self._task = asyncio.create_task(self.loop.run(self._stop))
        return self.loop.stats_.recovered

    async def submit(self, items: Sequence[WorkItem], recheck: Sequence[str] = ()) -> bool:
        """Take newly admitted jobs and look up ``recheck`` jobs in the ledger; answers whether
        intake should pause (backpressure)."""
        await self.start()
        self.loop.core.admit(items)
        self.loop.recovery.look_up(j for j in recheck if not self.loop.core.holds(j))
        self.loop.wake()
        return self.loop.core.paused

    async def paused(self) -> bool:
        """Whether intake should stay paused (backpressure)."""
        await self.start()
        return self.loop.core.paused

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
        self._ledger.close()


RemoteDispatcher = ray.remote(Dispatcher)


def dispatcher_actor(catalog: Catalog, settings: Settings, options: RuntimeOptions) -> Any:
    """The runtime's Dispatcher, created when it does not exist."""
    return RemoteDispatcher.options(
        name=options.dispatcher_name, namespace=options.namespace, max_concurrency=1000,
        **control_options(settings),
    ).remote(catalog, settings, options)  # fmt: skip
