"""The Dispatcher's loop, free of Ray: it drives every job through its pipeline.

Each round it fires due retries, expires leases, reads control commands, reconciles with the
ledger now and then, starts new dispatches and collects finished calls. Ledger writes never block
the round: starts and outcomes are written by tasks (at most ``max_writes`` at once), each batch
in one round trip, and acted on only once the ledger answered. A failed write keeps its jobs
where they are (settling, or back at the head of their queue) and is tried again after a backoff:
nothing is dropped because Redis blinked. The parts come from outside (see ``parts.py``), so the
whole loop runs in unit tests on ``InMemoryLedger`` and a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ingest_ray.config import Settings
from ingest_ray.errors import DamagedRecordError, StaleTransitionError
from ingest_ray.ledger.base import TransitionOutcome, TransitionRequest
from ingest_ray.metrics import RuntimeMetrics
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.admission_sync import AdmissionSync
from ingest_ray.runtime.dispatch_core import DispatcherCore
from ingest_ray.runtime.effects import start_request, transition_for
from ingest_ray.runtime.outcomes import Advance, Fail, Finish, Outcome, Retry
from ingest_ray.runtime.parts import (
    CallLost,
    Inbox,
    Launcher,
    LedgerReader,
    LoopStats,
    TransitionResult,
    TransitionWriter,
)
from ingest_ray.runtime.recovery import Recovery
from ingest_ray.runtime.work import Dispatch, StageFailure, WorkItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopTimings:
    """How often the loop does its periodic work (seconds)."""

    inbox_s: float = 0.1
    reconcile_s: float = 5.0
    maintain_s: float = 1.0
    idle_wait_s: float = 0.05
    max_writes: int = 2
    backoff_max_s: float = 5.0


class DispatchLoop:
    """Priority dispatch, retries, leases, cancellation, recovery and reconciliation."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        *,
        core: DispatcherCore,
        ledger: LedgerReader,
        writer: TransitionWriter,
        launcher: Launcher,
        inbox: Inbox,
        metrics: RuntimeMetrics,
        consumer: str = "dispatcher",
        timings: LoopTimings | None = None,
        wall: Callable[[], float] = time.time,
        admission: AdmissionSync | None = None,
    ) -> None:
        self.catalog, self.settings, self.core = catalog, settings, core
        self.writer, self.launcher, self.metrics = writer, launcher, metrics
        self.timings = timings or LoopTimings()
        self.clock, self.wall = core.clock, wall
        self.recovery = Recovery(self, ledger, inbox, consumer=consumer)
        self.admission = admission
        self._calls: dict[asyncio.Future[Any], Dispatch] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._unsettled: list[Outcome] = []
        self._wake = asyncio.Event()
        self._due = {"inbox": 0.0, "reconcile": 0.0, "maintain": 0.0, "flush": 0.0}
        self._backoff_until = 0.0
        self._backoff_s = 0.0
        self.draining = False
        self.stats_ = LoopStats()

    # --- the round ------------------------------------------------------------------------

    async def start(self) -> int:
        """Rebuild the queue from the ledger (once); answers how many jobs were recovered."""
        self.stats_.state = "recovering"
        self.stats_.recovered = await self.recovery.recover()
        self.stats_.state = "running"
        return self.stats_.recovered

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop`` is set; a failing round is counted and reported, never fatal."""
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:  # the jobs are safe in the ledger; report and go on
                self.report_error("loop", exc)
                await asyncio.sleep(0.2)

    async def step(self) -> None:
        """One round."""
        self.core.fire_timers()
        self.settle_later(self.core.expire_leases())
        now = self.clock()
        if self._is_due("inbox", now, self.timings.inbox_s):
            await self._guard("inbox", self.recovery.read_inbox())
        if self._is_due("reconcile", now, self.timings.reconcile_s):
            await self._guard("reconcile", self.recovery.reconcile())
        await self._guard("recheck", self.recovery.recheck())
        if self._is_due("maintain", now, self.timings.maintain_s):
            core = self.core
            budgets = self.launcher.maintain(
                core.backlog(), core.stats().in_flight, upstream=core.upstream()
            )
            core.set_budgets(budgets)
        if self.admission is not None:  # tokens, tenant limits, the backlog, the snapshot
            await self._guard("admission", self.admission.tick(self))
        if self._ledger_ok(now):
            if self._unsettled:
                self.settle_later(self._take_unsettled())
            if not self.draining:
                self._dispatch()
        await self._collect()
        if self._is_due("flush", now, 1.0):
            self._gauges()

    def wake(self) -> None:
        """Start the next round now (new work arrived)."""
        self._wake.set()

    # --- dispatch -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        dispatches = self.core.next_dispatches(self.launcher.idle)
        if not dispatches:
            return
        starting = [i for d in dispatches for i in d.items if i.needs_start]
        if not starting:
            for dispatch in dispatches:
                self._launch(dispatch)
            return
        self.spawn(self._start_then_launch(dispatches, starting))

    async def _start_then_launch(
        self, dispatches: list[Dispatch], starting: list[WorkItem]
    ) -> None:
        requests = [start_request(i, self.catalog) for i in starting]
        try:
            results = await self.writer.transition_many(requests)
        except Exception as exc:  # the ledger is away: everything goes back, nothing is lost
            self._ledger_failed(exc)
            for dispatch in dispatches:
                self.core.release(dispatch.dispatch_id, dispatch.items)
            return
        self._ledger_answered()
        refused = set()
        for item, result in zip(starting, results, strict=True):
            if isinstance(result, TransitionOutcome):
                item.needs_start = False
            else:
                refused.add(item.job_id)
                if isinstance(result, DamagedRecordError):
                    self.report_error("damaged_record", result)
        for dispatch in dispatches:
            if any(i.job_id in refused for i in dispatch.items):
                keep = [i for i in dispatch.items if i.job_id not in refused]
                self.core.release(dispatch.dispatch_id, keep)
            else:
                self._launch(dispatch)
        self.recovery.look_up(refused)  # cancelled meanwhile, or started by someone else
        self.wake()

    def _launch(self, dispatch: Dispatch) -> None:
        first = dispatch.items[0]
        spec = self.catalog.pipeline(first.pipeline).stages[first.stage_index]
        inputs = [i.stage_input(dispatch.stage) for i in dispatch.items]
        try:
            call = self.launcher.launch(dispatch, inputs, spec.timeout_s)
        except Exception as exc:  # no actor could be started: the items are lost, not failed
            self.report_error("launch", exc)
            self.settle_later(self.core.lost(dispatch.dispatch_id))
            return
        self._calls[asyncio.ensure_future(call)] = dispatch

    async def _collect(self) -> None:
        waits: set[asyncio.Future[Any]] = {*self._calls, *self._writes}
        wake = asyncio.ensure_future(self._wake.wait())
        timeout = self.timings.idle_wait_s
        timer = self.core.next_timer_in()
        if timer is not None:
            timeout = min(timeout, max(timer, 0.001))
        done, _ = await asyncio.wait({*waits, wake}, timeout=timeout, return_when="FIRST_COMPLETED")
        wake.cancel()
        self._wake.clear()
        outcomes: list[Outcome] = []
        for future in done:
            dispatch = self._calls.pop(future, None)
            if dispatch is not None:
                outcomes += self._finished(future, dispatch)
        self.settle_later(outcomes)

    def _finished(self, future: asyncio.Future[Any], dispatch: Dispatch) -> list[Outcome]:
        try:
            results = future.result()
        except CallLost:  # counted with the outcomes it turns into, once they are written
            return self.core.lost(dispatch.dispatch_id)
        except Exception as exc:  # a call that failed as a whole fails each of its items
            results = [StageFailure.from_error(exc)] * len(dispatch.items)
        duration = self.clock() - dispatch.started_at
        self.metrics.observe("ingest_stage_duration_seconds", dispatch.stage, value=duration)
        return self.core.complete(dispatch.dispatch_id, results)

    # --- settling -------------------------------------------------------------------------

    def settle_later(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        if len(self._writes) >= self.timings.max_writes or not self._ledger_ok(self.clock()):
            self._unsettled += outcomes  # written by a later round
            return
        self.spawn(self.settle(outcomes))

    def _take_unsettled(self) -> list[Outcome]:
        outcomes, self._unsettled = self._unsettled, []
        return outcomes

    async def settle(self, outcomes: list[Outcome]) -> None:
        """Write outcomes, then act on what the ledger said (a refusal drops the job)."""
        requests = [transition_for(o, self.catalog, self.settings) for o in outcomes]
        try:
            results = await self.writer.transition_many(requests)
        except Exception as exc:  # keep them settling and write them again later
            self._ledger_failed(exc)
            self._unsettled += outcomes
            return
        self._ledger_answered()
        cancelled: list[WorkItem] = []
        failing: list[Outcome] = []
        for outcome, result in zip(outcomes, results, strict=True):
            self._count(outcome, result)
            if isinstance(result, DamagedRecordError):
                self.report_error("damaged_record", result)
                fallback = self.core.unstorable(outcome, result)
                if fallback is not None:  # fail the job with the ledger's reason instead
                    failing.append(fallback)
                    continue
            accepted = isinstance(result, TransitionOutcome)
            self.core.apply(outcome, accepted=accepted)
            if not accepted:
                if _cancelled(result):
                    cancelled.append(outcome.item)
                elif not isinstance(result, DamagedRecordError):  # that one is dropped
                    self.recovery.look_up([outcome.item.job_id])
        self.recovery.cancelled_while_running(cancelled)
        self.settle_later(failing)
        self.wake()

    async def write(self, requests: list[TransitionRequest]) -> list[TransitionResult] | None:
        """A ledger write for recovery and reconciliation (``None`` when the ledger is away)."""
        try:
            results = await self.writer.transition_many(requests)
        except Exception as exc:
            self._ledger_failed(exc)
            return None
        self._ledger_answered()
        return results

    # --- bookkeeping ----------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._writes.add(task)
        task.add_done_callback(self._write_done)

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.report_error("write", task.exception())  # type: ignore[arg-type]
        self.wake()

    def _ledger_ok(self, now: float) -> bool:
        return now >= self._backoff_until

    def _ledger_failed(self, exc: BaseException) -> None:
        self._backoff_s = min(self.timings.backoff_max_s, max(0.1, self._backoff_s * 2))
        self._backoff_until = self.clock() + self._backoff_s
        self.stats_.ledger_error = f"{type(exc).__name__}: {exc}"
        if self.stats_.ledger_error_since is None:
            self.stats_.ledger_error_since = self.wall()
        self.metrics.inc("ingest_control_errors", "ledger")

    def _ledger_answered(self) -> None:
        self._backoff_s = 0.0
        self.stats_.ledger_error = None
        self.stats_.ledger_error_since = None

    def report_error(self, where: str, exc: BaseException) -> None:
        self.stats_.last_error = f"{where}: {type(exc).__name__}: {exc}"
        self.stats_.loop_errors += 1
        self.metrics.inc("ingest_control_errors", where)
        log.warning("dispatcher %s failed: %s", where, exc, exc_info=exc)

    async def _guard(self, where: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:
            self.report_error(where, exc)

    def _is_due(self, name: str, now: float, every: float) -> bool:
        if now < self._due[name]:
            return False
        self._due[name] = now + every
        return True

    def _count(self, outcome: Outcome, result: object) -> None:
        """Count an outcome once the ledger answered: a try the ledger refused (someone moved
        the job first) is counted as ``refused``, not as what it would have recorded."""
        stage, pipeline = outcome.stage, outcome.item.pipeline
        if _cancelled(result):
            self.metrics.inc("ingest_jobs_cancelled", pipeline)
            return
        if not isinstance(result, TransitionOutcome):
            self.metrics.inc("ingest_stage_attempts", stage, "refused")
            return
        if isinstance(outcome, Advance | Finish):
            self.metrics.inc("ingest_stage_attempts", stage, "ok")
        if isinstance(outcome, Finish):
            self.metrics.inc("ingest_jobs_completed", pipeline)
        elif isinstance(outcome, Retry):
            kind = "lost" if outcome.failure.lost else "retry"
            self.metrics.inc("ingest_stage_attempts", stage, kind)
            self.metrics.inc("ingest_retries_scheduled", stage)
        elif isinstance(outcome, Fail):
            self.metrics.inc("ingest_stage_attempts", stage, "fail")
            self.metrics.inc("ingest_jobs_failed", pipeline)
            self.metrics.inc("ingest_dead_letters", "job")

    def _gauges(self) -> None:
        stats = self.core.stats()
        for priority, depth in enumerate(stats.ready_by_priority):
            self.metrics.set("ingest_queue_depth", str(priority), value=depth)
        for name, pool in self.launcher.stats().items():
            self.metrics.set("ingest_in_flight", name, value=stats.in_flight.get(name, 0))
            self.metrics.set("ingest_pool_size", name, value=pool.size)
            self.metrics.set("ingest_pool_target", name, value=pool.target)
            self.metrics.set("ingest_pool_backlog", name, value=pool.backlog)
            utilisation = pool.busy / pool.slots if pool.slots else 0.0
            self.metrics.set("ingest_pool_utilisation", name, value=utilisation)
        self.metrics.set("ingest_backpressure_paused", value=1.0 if stats.paused else 0.0)
        self.metrics.flush()

    def stats(self) -> LoopStats:
        """A snapshot for health and ``ingest-ray status``."""
        core = self.core.stats()
        s = self.stats_
        s.held, s.ready, s.ready_by_priority = core.held, core.ready, core.ready_by_priority
        s.timers, s.in_flight, s.settling, s.paused = (
            core.timers,
            core.in_flight,
            core.settling,
            core.paused,
        )
        s.draining = self.draining
        s.repairs = dict(self.recovery.repairs)
        s.pending_cancels = self.recovery.pending_cancels()
        s.pools = self.launcher.stats()
        return LoopStats(**vars(s))

    # --- draining -------------------------------------------------------------------------

    async def drain(self, grace_s: float) -> int:
        """Stop launching; let calls and writes finish for up to ``grace_s``; answers how many
        calls were handed back unfinished (their jobs resume from the ledger later)."""
        self.draining = True
        deadline = time.monotonic() + grace_s
        while not self.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the running loop collects and writes meanwhile
        return len(self._calls)

    def idle(self) -> bool:
        """No call, write or unwritten outcome is pending."""
        return not (self._calls or self._writes or self._unsettled)


def _cancelled(result: object) -> bool:
    return isinstance(result, StaleTransitionError) and result.actual_status == "cancelled"
