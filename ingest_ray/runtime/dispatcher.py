"""The Dispatcher actor: one named actor that drives every job through its pipeline.

A thin shell around :class:`~ingest_ray.runtime.dispatch_core.DispatcherCore`: it launches the
dispatches the core picks on the stage pools, waits for results without blocking intake, writes
each outcome to the ledger (through the LedgerCache) before acting on it, publishes results,
mapping events and dead letters, polls the control inbox (cancel, requeue), and on start rebuilds
its queue from the ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import ray
import redis
from ray.exceptions import RayActorError, RayError

from ingest_ray.config import Settings
from ingest_ray.control import ControlInbox
from ingest_ray.errors import StaleTransitionError
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.base import JobFilter, TransitionOutcome, TransitionRequest
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.metrics import RuntimeMetrics, Snapshot
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.dispatch_core import Advance, DispatcherCore, Fail, Finish, Outcome, Retry
from ingest_ray.runtime.effects import messages_for, start_request, transition_for
from ingest_ray.runtime.effects import work_item_from_job as item_from_job
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.pools import StagePool
from ingest_ray.runtime.work import Dispatch, StageFailure, WorkItem
from ingest_ray.states import JobStatus

log = logging.getLogger(__name__)


class Dispatcher:
    """Priority dispatch, retries, leases, cancellation and backpressure for one runtime."""

    def __init__(self, catalog: Catalog, settings: Settings, options: RuntimeOptions) -> None:
        self.catalog, self.settings, self.options = catalog, settings, options
        self.core = DispatcherCore(
            catalog, clock=time.monotonic, aging_s=options.aging_s,
            high_watermark=options.high_watermark, low_watermark=options.low_watermark,
        )  # fmt: skip
        self.ledger = open_ledger(settings)
        self.inbox = ControlInbox(
            redis.Redis.from_url(settings.redis_url, decode_responses=True),
            options.inbox_key(settings.redis_prefix),
        )
        self.writer = ray.get_actor(options.ledger_cache_name, namespace=options.namespace)
        self.pools = {
            name: StagePool(
                spec,
                _factories(catalog, name),
                settings,
                namespace_tag=options.name,
                namespace=options.namespace,
                idle_s=options.pool_idle_s,
            )
            for name, spec in catalog.pools.items()
            if any(s.pool_name == name for p in catalog.pipelines.values() for s in p.stages)
        }
        self.producer = KafkaClient.from_settings(settings).producer()
        self.metrics = RuntimeMetrics(mirror_to_ray=True)
        self._calls: dict[asyncio.Future[Any], tuple[Dispatch, str]] = {}
        self._wake = asyncio.Event()
        self._draining = False
        self._stop = False
        self._task: asyncio.Task[None] | None = None
        self.recovered = 0

    # --- the actor's API --------------------------------------------------------------------

    async def start(self) -> int:
        """Rebuild the queue from the ledger and start the loop; idempotent."""
        if self._task is None:
            self.recovered = await self._recover()
            self._task = asyncio.create_task(self._run())
        return self.recovered

    async def submit(self, items: Sequence[WorkItem], recheck: Sequence[str] = ()) -> bool:
        """Take newly admitted jobs (idempotent per job) and look up ``recheck`` jobs in the
        ledger unless held already; answers whether intake should pause (backpressure)."""
        self.core.admit(items)
        missing = [j for j in recheck if not self.core.holds(j)]
        if missing:
            jobs = await asyncio.to_thread(self.ledger.get_many, missing)
            self.core.admit([i for j in jobs if j is not None and (i := self._item(j.job_id, j))])
        self._wake.set()
        return self.core.paused

    async def paused(self) -> bool:
        """Whether intake should stay paused (backpressure)."""
        return self.core.paused

    async def stats(self) -> dict[str, Any]:
        """What is queued, waiting and in flight, and the pool sizes."""
        s = self.core.stats()
        return {
            "held": s.held, "ready": s.ready, "ready_by_priority": s.ready_by_priority,
            "timers": s.timers, "in_flight": s.in_flight, "paused": s.paused,
            "draining": self._draining, "recovered": self.recovered,
            "pools": {n: p.actor_names() for n, p in self.pools.items()},
        }  # fmt: skip

    async def metrics_snapshot(self) -> Snapshot:
        """Counters and histograms for the worker's ``/metrics``."""
        return self.metrics.snapshot()

    async def drain(self, grace_s: float) -> int:
        """Stop launching stages, let in-flight calls finish for up to ``grace_s``; answers how
        many calls were handed back unfinished (their jobs resume from the ledger later)."""
        self._draining = True
        deadline = time.monotonic() + grace_s
        while self._calls and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.producer.flush()
        return len(self._calls)

    async def undrain(self) -> None:
        """Launch stages again after :meth:`drain`."""
        self._draining = False
        self._wake.set()

    async def shutdown(self) -> None:
        """Stop the loop, the pools and the producer."""
        self._stop = True
        self._wake.set()
        if self._task is not None:
            await self._task
        for pool in self.pools.values():
            pool.kill_all()
        self.producer.close()
        self.ledger.close()

    # --- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        next_inbox = next_sweep = 0.0
        while not self._stop:
            try:
                self.core.fire_timers()
                await self._settle(self.core.expire_leases())
                now = time.monotonic()
                if now >= next_inbox:
                    await self._inbox()
                    next_inbox = now + self.options.inbox_poll_s
                if now >= next_sweep:
                    await self._sweep()
                    next_sweep = now + self.options.sweep_s
                if not self._draining:
                    for dispatch in self.core.next_dispatches():
                        await self._launch(dispatch)
                await self._collect()
                self._gauges()
            except Exception:  # the loop must survive Redis/Kafka hiccups; work is in the ledger
                log.exception("dispatcher loop iteration failed")
                await asyncio.sleep(0.5)

    async def _launch(self, dispatch: Dispatch) -> None:
        starting = [i for i in dispatch.items if i.needs_start]
        if starting:
            requests = [start_request(i, self.catalog) for i in starting]
            results = await self.writer.transition_many.remote(requests)
            refused = {i.job_id for i, r in zip(starting, results, strict=True)
                       if not isinstance(r, TransitionOutcome)}  # fmt: skip
            for item in starting:
                item.needs_start = item.job_id in refused
            if refused:  # cancelled meanwhile: drop those, requeue the rest for the next round
                self.core.release(dispatch.dispatch_id, [i for i in dispatch.items
                                                         if i.job_id not in refused])  # fmt: skip
                return
        spec = self.catalog.pipeline(dispatch.items[0].pipeline).stages[
            dispatch.items[0].stage_index
        ]
        ref, actor = self.pools[dispatch.pool].submit(
            dispatch.stage, [i.stage_input(dispatch.stage) for i in dispatch.items], spec.timeout_s
        )
        self._calls[asyncio.ensure_future(ref)] = (dispatch, actor)

    async def _collect(self) -> None:
        wake = asyncio.ensure_future(self._wake.wait())
        timeout = 0.05 if not self._calls else 0.02
        done, _ = await asyncio.wait(
            [*self._calls, wake], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        wake.cancel()
        self._wake.clear()
        outcomes: list[Outcome] = []
        for future in done:
            if future is wake or future not in self._calls:
                continue
            dispatch, actor = self._calls.pop(future)
            outcomes += self._finished(future, dispatch, actor)
        await self._settle(outcomes)

    def _finished(
        self, future: asyncio.Future[Any], dispatch: Dispatch, actor: str
    ) -> list[Outcome]:
        pool = self.pools[dispatch.pool]
        pool.done(actor)
        try:
            results = future.result()
        except RayActorError:
            pool.dead(actor)
            self.core.lost(dispatch.dispatch_id)
            return []
        except RayError as exc:
            results = [StageFailure.from_error(exc)] * len(dispatch.items)
        duration = time.monotonic() - dispatch.started_at
        self.metrics.observe("ingest_stage_duration_seconds", dispatch.stage, value=duration)
        return self.core.complete(dispatch.dispatch_id, results)

    async def _settle(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        requests = [transition_for(o, self.catalog) for o in outcomes]
        results = await self.writer.transition_many.remote(requests)
        for outcome, result in zip(outcomes, results, strict=True):
            accepted = isinstance(result, TransitionOutcome)
            self.core.apply(outcome, accepted=accepted)
            self._count(outcome, result)
            if accepted:
                for msg in messages_for(outcome, self.catalog, self.settings):
                    self.producer.send(msg.topic, msg.event, key=msg.key)

    def _count(self, outcome: Outcome, result: object) -> None:
        stage, pipeline = outcome.stage, outcome.item.pipeline
        if isinstance(result, StaleTransitionError) and result.actual_status == "cancelled":
            self.metrics.inc("ingest_jobs_cancelled", pipeline)
            return
        if isinstance(outcome, Advance | Finish):
            self.metrics.inc("ingest_stage_attempts", stage, "ok")
        if isinstance(outcome, Finish):
            self.metrics.inc("ingest_jobs_completed", pipeline)
        elif isinstance(outcome, Retry):
            self.metrics.inc("ingest_stage_attempts", stage, "retry")
            self.metrics.inc("ingest_retries_scheduled", stage)
        elif isinstance(outcome, Fail):
            self.metrics.inc("ingest_stage_attempts", stage, "fail")
            self.metrics.inc("ingest_jobs_failed", pipeline)
            self.metrics.inc("ingest_dead_letters", "job")

    def _gauges(self) -> None:
        stats = self.core.stats()
        for priority, depth in enumerate(stats.ready_by_priority):
            self.metrics.set("ingest_queue_depth", str(priority), value=depth)
        for pool in self.pools:
            self.metrics.set("ingest_in_flight", pool, value=stats.in_flight.get(pool, 0))
        self.metrics.set("ingest_backpressure_paused", value=1.0 if stats.paused else 0.0)

    # --- recovery and control ---------------------------------------------------------------

    async def _recover(self) -> int:
        """Queue every queued and processing job of the ledger (a restart loses nothing)."""
        items: list[WorkItem] = []
        for status in (JobStatus.PROCESSING, JobStatus.QUEUED):
            cursor: str | None = None
            while True:
                page = await asyncio.to_thread(
                    self.ledger.list_jobs, JobFilter(status=status), cursor=cursor, limit=1000
                )
                items += [i for j in page.items if (i := self._item(j.job_id, j)) is not None]
                cursor = page.next_cursor
                if cursor is None:
                    break
        return self.core.admit(items)

    async def _inbox(self) -> None:
        raw = await asyncio.to_thread(self.inbox.pop, 500)
        for entry in raw:
            command = json.loads(entry)
            job_id = command.get("job_id", "")
            if command.get("op") == "cancel" and self.core.cancel(job_id):
                self.metrics.inc("ingest_jobs_cancelled", command.get("pipeline", ""))
            elif command.get("op") == "requeue" and not self.core.holds(job_id):
                job = await asyncio.to_thread(self.ledger.get, job_id)
                item = self._item(job_id, job)
                if item is not None:
                    self.core.admit([item])

    async def _sweep(self) -> None:
        """Jobs whose lease ran out and that nobody here holds: run their stage again."""
        for pool in self.pools.values():
            pool.shrink_idle()
        expired = await asyncio.to_thread(self.ledger.expired_leases, limit=500)
        orphans = [j for j in expired if not self.core.holds(j)]
        if not orphans:
            return
        jobs = await asyncio.to_thread(self.ledger.get_many, orphans)
        bumps, items = [], []
        for job in jobs:
            item = self._item(job.job_id, job) if job is not None else None
            if item is None or job is None or job.status is not JobStatus.PROCESSING:
                continue
            item.attempt = job.attempts + 1
            bumps.append(TransitionRequest(
                job.job_id, JobStatus.PROCESSING, JobStatus.PROCESSING, stage=job.stage,
                attempts=item.attempt, expected_attempts=job.attempts,
                lease_s=self.catalog.pipeline(job.pipeline).stages[item.stage_index].lease_s,
                data={"lease_expired_attempt": job.attempts},
            ))  # fmt: skip
            items.append(item)
        results = await self.writer.transition_many.remote(bumps)
        self.core.admit([i for i, r in zip(items, results, strict=True)
                         if isinstance(r, TransitionOutcome)])  # fmt: skip

    def _item(self, job_id: str, job: Any) -> WorkItem | None:
        try:
            return item_from_job(job, self.catalog)
        except Exception:  # an unknown pipeline or a damaged record must not stop recovery
            log.exception("cannot resume job %s", job_id)
            return None


def _factories(catalog: Catalog, pool: str) -> dict[str, str]:
    stages = {s.stage for p in catalog.pipelines.values() for s in p.stages if s.pool_name == pool}
    return {name: catalog.stages[name] for name in stages}


RemoteDispatcher = ray.remote(Dispatcher)
