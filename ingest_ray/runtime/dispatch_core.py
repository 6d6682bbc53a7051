"""The Dispatcher's logic, free of Ray, Redis and real time (the clock is injected).

It holds every job the runtime is working on: in per-stage ready queues (priority + aging), in
a timer heap (delayed retries; a waiting retry holds no worker), or in flight (a leased dispatch
to a pool). It decides what to dispatch within each pool's budget, and what each stage result
means (advance, finish, retry later, fail). It proposes; the caller writes the ledger and then
calls :meth:`DispatcherCore.apply` with whether the ledger accepted, so the ledger's
compare-and-set stays the single source of truth (a cancelled job's write is refused and the
job is dropped).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.pipelines.spec import StageSpec
from ingest_ray.runtime.ready import ReadyQueue
from ingest_ray.runtime.work import Dispatch, StageFailure, StageResult, WorkItem
from ingest_ray.stages.base import StageOutput

LEASE_LOST = StageFailure("LeaseExpired", "stage call lost or timed out (lease expired)", True)


@dataclass(frozen=True, slots=True)
class Advance:
    """Stage done; the job moves on to ``next_stage``."""

    item: WorkItem
    stage: str
    output: dict[str, Any]
    next_stage: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class Finish:
    """Stage done and nothing follows (last stage, or the stage asked to finish)."""

    item: WorkItem
    stage: str
    output: dict[str, Any]
    outcome: str | None
    duration_s: float


@dataclass(frozen=True, slots=True)
class Retry:
    """Try ``attempt`` of ``stage`` failed; try ``attempt + 1`` after ``delay_s``."""

    item: WorkItem
    stage: str
    failure: StageFailure
    attempt: int
    delay_s: float


@dataclass(frozen=True, slots=True)
class Fail:
    """The job failed for good at ``stage`` after ``attempt`` tries."""

    item: WorkItem
    stage: str
    failure: StageFailure
    attempt: int


Outcome = Advance | Finish | Retry | Fail


@dataclass
class CoreStats:
    """What the Dispatcher holds right now."""

    held: int = 0
    ready: dict[str, int] = field(default_factory=dict)
    ready_by_priority: list[int] = field(default_factory=lambda: [0] * 10)
    timers: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    paused: bool = False


class DispatcherCore:
    """Queueing, aging, budgets, leases, retry timing and backpressure for one runtime."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Callable[[], float],
        aging_s: float = 30.0,
        high_watermark: int = 20000,
        low_watermark: int = 10000,
    ) -> None:
        if not 0 <= low_watermark < high_watermark:
            raise ValueError("need 0 <= low_watermark < high_watermark")
        self.catalog = catalog
        self.clock = clock
        self.high_watermark = high_watermark
        self.low_watermark = low_watermark
        self._ready: dict[str, ReadyQueue] = {}
        self._aging_s = aging_s
        self._timers: list[tuple[float, int, WorkItem]] = []
        self._in_flight: dict[int, Dispatch] = {}
        self._busy: dict[str, int] = {}
        self._held: dict[str, WorkItem] = {}
        self._seq = itertools.count(1)
        self.paused = False

    # --- intake ---------------------------------------------------------------------------

    def admit(self, items: Iterable[WorkItem]) -> int:
        """Take new or recovered jobs at their current stage; jobs already held are ignored."""
        now = self.clock()
        taken = 0
        for item in items:
            if item.job_id in self._held:
                continue
            item.ready_at = now
            self._held[item.job_id] = item
            self._queue(item).push(item)
            taken += 1
        self._update_backpressure()
        return taken

    def holds(self, job_id: str) -> bool:
        """Whether the job is ready, waiting on a timer or in flight here."""
        return job_id in self._held

    def cancel(self, job_id: str) -> bool:
        """Drop a job that is waiting (ready or on a timer). In-flight jobs are dropped when
        their result's ledger write is refused. True when the job was taken out."""
        item = self._held.get(job_id)
        if item is None or self._is_in_flight(job_id):
            return False
        removed = self._queue(item).remove(job_id) is not None
        if not removed:
            self._timers = [t for t in self._timers if t[2].job_id != job_id]
            heapq.heapify(self._timers)
        self.forget(job_id)
        return True

    def forget(self, job_id: str) -> None:
        """Stop tracking a job (finished, failed, cancelled or refused by the ledger)."""
        self._held.pop(job_id, None)
        self._update_backpressure()

    # --- dispatch -------------------------------------------------------------------------

    def next_dispatches(self) -> list[Dispatch]:
        """Batches to send now: per pool, while its budget allows, the best ready stage queue."""
        now = self.clock()
        out: list[Dispatch] = []
        for pool in self.catalog.pools.values():
            while self._busy.get(pool.name, 0) < pool.max_in_flight:
                stage = self._best_stage(pool.name, now)
                if stage is None:
                    break
                out.append(self._take(pool.name, stage, pool.batch_size, now))
        return out

    def _best_stage(self, pool: str, now: float) -> str | None:
        best: tuple[float, str] | None = None
        for stage, queue in self._ready.items():
            if self._pool_of_stage(stage) != pool:
                continue
            score = queue.best_score(now)
            if score is not None and (best is None or score > best[0]):
                best = (score, stage)
        return None if best is None else best[1]

    def _take(self, pool: str, stage: str, size: int, now: float) -> Dispatch:
        queue = self._ready[stage]
        items: list[WorkItem] = []
        while len(items) < size:
            item = queue.pop(now)
            if item is None:
                break
            items.append(item)
        spec = self._spec(items[0])
        dispatch = Dispatch(next(self._seq), pool, stage, tuple(items), now, now + spec.lease_s)
        self._in_flight[dispatch.dispatch_id] = dispatch
        self._busy[pool] = self._busy.get(pool, 0) + 1
        return dispatch

    def release(self, dispatch_id: int, keep: Sequence[WorkItem] = ()) -> None:
        """Undo a dispatch before it was sent (e.g. the start write was refused for some
        items): ``keep`` go back to the front of their queue, the rest are forgotten."""
        dispatch = self._close(dispatch_id)
        if dispatch is None:
            return
        kept = {i.job_id for i in keep}
        for item in dispatch.items:
            if item.job_id in kept:
                self._queue(item).push_front(item)
            else:
                self.forget(item.job_id)

    # --- results --------------------------------------------------------------------------

    def complete(self, dispatch_id: int, results: Sequence[StageResult]) -> list[Outcome]:
        """Interpret a dispatch's results (one per item). Unknown (expired) dispatches: []."""
        dispatch = self._close(dispatch_id)
        if dispatch is None:
            return []
        if len(results) != len(dispatch.items):
            failure = StageFailure("StageContractError", "result count != batch size", True)
            results = [failure] * len(dispatch.items)
        duration = self.clock() - dispatch.started_at
        return [
            self._interpret(item, dispatch.stage, result, duration)
            for item, result in zip(dispatch.items, results, strict=True)
        ]

    def lost(self, dispatch_id: int) -> None:
        """The call died (actor crash): its lease expires now; :meth:`expire_leases` retries."""
        dispatch = self._in_flight.get(dispatch_id)
        if dispatch is not None:
            self._in_flight[dispatch_id] = replace(dispatch, lease_deadline=self.clock())

    def expire_leases(self) -> list[Outcome]:
        """Retry (or fail) the items of every dispatch whose lease ran out."""
        now = self.clock()
        outcomes: list[Outcome] = []
        for dispatch_id in [d for d, x in self._in_flight.items() if x.lease_deadline <= now]:
            dispatch = self._close(dispatch_id)
            assert dispatch is not None
            outcomes += [self._failed(i, dispatch.stage, LEASE_LOST) for i in dispatch.items]
        return outcomes

    def fire_timers(self) -> int:
        """Move retries whose delay is over back to their ready queue."""
        now = self.clock()
        fired = 0
        while self._timers and self._timers[0][0] <= now:
            _, _, item = heapq.heappop(self._timers)
            if item.job_id in self._held:
                item.ready_at = now
                self._queue(item).push(item)
                fired += 1
        return fired

    def apply(self, outcome: Outcome, *, accepted: bool) -> None:
        """Act on an outcome once the ledger said yes (``accepted``) or no."""
        item = outcome.item
        if not accepted or isinstance(outcome, Finish | Fail):
            self.forget(item.job_id)
            return
        if isinstance(outcome, Advance):
            item.outputs = {**item.outputs, outcome.stage: outcome.output}
            item.stage_index += 1
            item.attempt = 1
            item.ready_at = self.clock()
            self._queue(item).push(item)
        else:
            item.attempt = outcome.attempt + 1
            heapq.heappush(self._timers, (self.clock() + outcome.delay_s, next(self._seq), item))

    # --- helpers --------------------------------------------------------------------------

    def _interpret(
        self, item: WorkItem, stage: str, result: StageResult, duration: float
    ) -> Outcome:
        if isinstance(result, StageFailure):
            return self._failed(item, stage, result)
        assert isinstance(result, StageOutput)
        following = self.catalog.pipeline(item.pipeline).next_after(stage)
        if result.finish or following is None:
            return Finish(item, stage, result.data, result.outcome, duration)
        return Advance(item, stage, result.data, following.stage, duration)

    def _failed(self, item: WorkItem, stage: str, failure: StageFailure) -> Outcome:
        policy = self._spec(item).retry
        error = failure.as_error()
        if policy.should_retry(error, item.attempt):
            return Retry(item, stage, failure, item.attempt, policy.delay_s(item.attempt, error))
        return Fail(item, stage, failure, item.attempt)

    def _close(self, dispatch_id: int) -> Dispatch | None:
        dispatch = self._in_flight.pop(dispatch_id, None)
        if dispatch is not None:
            self._busy[dispatch.pool] -= 1
        return dispatch

    def _spec(self, item: WorkItem) -> StageSpec:
        return self.catalog.pipeline(item.pipeline).stages[item.stage_index]

    def _queue(self, item: WorkItem) -> ReadyQueue:
        stage = self._spec(item).stage
        queue = self._ready.get(stage)
        if queue is None:
            queue = self._ready[stage] = ReadyQueue(self._aging_s)
        return queue

    def _pool_of_stage(self, stage: str) -> str:
        for pipeline in self.catalog.pipelines.values():
            for spec in pipeline.stages:
                if spec.stage == stage:
                    return spec.pool_name
        return stage

    def _is_in_flight(self, job_id: str) -> bool:
        return any(job_id == i.job_id for d in self._in_flight.values() for i in d.items)

    def _update_backpressure(self) -> None:
        held = len(self._held)
        if not self.paused and held >= self.high_watermark:
            self.paused = True
        elif self.paused and held <= self.low_watermark:
            self.paused = False

    def stats(self) -> CoreStats:
        """A snapshot for metrics and health."""
        by_priority = [0] * 10
        for queue in self._ready.values():
            for priority, depth in enumerate(queue.depth_by_priority()):
                by_priority[priority] += depth
        return CoreStats(
            held=len(self._held),
            ready={s: len(q) for s, q in self._ready.items()},
            ready_by_priority=by_priority,
            timers=len(self._timers),
            in_flight=dict(self._busy),
            paused=self.paused,
        )
