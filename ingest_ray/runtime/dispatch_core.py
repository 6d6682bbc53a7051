"""The Dispatcher's queueing logic, free of Ray, Redis and real time (the clock is injected).

Every job the runtime works on is in exactly one place: a per-stage ready queue
(``fair_queue.py``), the timer heap (a delayed retry or a wait for a rate-limit token; it holds
no worker), in flight (a leased dispatch to a pool), or settling (its outcome is being written).
Who goes next is decided with ``admission_core.py``. :meth:`DispatcherCore.nowhere` names held
jobs that are in none of them, so the caller's reconciliation can repair them.

It proposes; the caller writes the ledger and then calls :meth:`DispatcherCore.apply` with
whether the ledger accepted, so the ledger's compare-and-set stays the single source of truth
(a cancelled job's write is refused and the job is dropped).
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ingest_ray.errors import IngestError
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import StageSpec
from ingest_ray.runtime.admission_core import AdmissionCore
from ingest_ray.runtime.fair_queue import FairQueue
from ingest_ray.runtime.outcomes import (
    ACTOR_LOST,
    LEASE_LOST,
    Advance,
    Fail,
    Finish,
    Outcome,
    Retry,
)
from ingest_ray.runtime.sizing import spread_batch
from ingest_ray.runtime.work import Dispatch, StageFailure, StageResult, WorkItem
from ingest_ray.stages.base import StageOutput

__all__ = ["Advance", "CoreStats", "DispatcherCore", "Fail", "Finish", "Outcome", "Retry"]


@dataclass
class CoreStats:
    """What the Dispatcher holds right now."""

    held: int = 0
    ready: dict[str, int] = field(default_factory=dict)
    ready_by_priority: list[int] = field(default_factory=lambda: [0] * 10)
    timers: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    settling: int = 0
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
        admission: AdmissionCore | None = None,
    ) -> None:
        if not 0 <= low_watermark < high_watermark:
            raise ValueError("need 0 <= low_watermark < high_watermark")
        self.catalog = catalog
        self.clock = clock
        self.high_watermark = high_watermark
        self.low_watermark = low_watermark
        self.aging_s = self._aging_s = aging_s
        self.admission = admission or AdmissionCore(catalog)
        self._ready: dict[str, FairQueue] = {}
        self._timers: list[tuple[float, int, WorkItem]] = []
        self._timed: set[str] = set()
        self._in_flight: dict[int, Dispatch] = {}
        self._dispatch_of: dict[str, int] = {}
        self._settling: set[str] = set()
        self._busy: dict[str, int] = {}
        self._partial: dict[str, set[int]] = {}  # per pool: dispatches with a partial batch
        self._budgets: dict[str, int] = {}
        self._held: dict[str, WorkItem] = {}
        self._seq = itertools.count(1)
        self._pool_of = {s.stage: s.pool_name for p in catalog.pipelines.values() for s in p.stages}
        self._ahead = _accelerated_ahead(catalog)
        self.paused = False

    # --- intake ---------------------------------------------------------------------------

    def admit(self, items: Iterable[WorkItem]) -> int:
        """Take new or recovered jobs, ready now at their current stage; held ones are ignored."""
        return self.admit_at((item, None) for item in items)

    def admit_at(self, items: Iterable[tuple[WorkItem, float | None]]) -> int:
        """Take jobs that become ready at a clock time (a retry the ledger scheduled), or now."""
        now, taken = self.clock(), 0
        for item, when in items:
            if item.job_id in self._held or item.pipeline not in self.catalog.pipelines:
                continue
            self._held[item.job_id] = item
            self.admission.held(item, now)
            if when is not None and when > now:
                self._push_timer(when, item)
            else:
                item.ready_at = now
                self._queue(item).push(item)
            taken += 1
        self._update_backpressure()
        return taken

    def holds(self, job_id: str) -> bool:
        """Whether the job is ready, on a timer, in flight or settling here."""
        return job_id in self._held

    def item(self, job_id: str) -> WorkItem | None:
        """The held item of ``job_id``."""
        return self._held.get(job_id)

    def settling(self, job_id: str) -> bool:
        """Whether the job's outcome is being written."""
        return job_id in self._settling

    def adopt_lost(self, item: WorkItem) -> Outcome:
        """Hold a job whose try was lost before anyone here held it (its lease expired with
        nobody holding it): the outcome of that loss, to be written like any other."""
        self._held[item.job_id] = item
        self.admission.held(item, self.clock())
        self._update_backpressure()
        return self._settle_all([self._failed(item, self._spec(item).stage, LEASE_LOST)])[0]

    def held_ids(self) -> list[str]:
        """Every job held (for reconciliation with the ledger)."""
        return list(self._held)

    def waiting_since(self, moment: float) -> list[str]:
        """Held jobs ready or on a timer since before ``moment`` (neither in flight nor
        settling): the ones worth comparing with the ledger."""
        return [
            job_id
            for job_id, item in self._held.items()
            if item.ready_at < moment
            and job_id not in self._dispatch_of
            and job_id not in self._settling
        ]

    def unstarted(self) -> int:
        """Held jobs whose queued -> processing write is still to come."""
        return sum(1 for item in self._held.values() if item.needs_start)

    def dispatch_of(self, job_id: str) -> Dispatch | None:
        """The in-flight dispatch that carries ``job_id``, if any."""
        dispatch_id = self._dispatch_of.get(job_id)
        return None if dispatch_id is None else self._in_flight.get(dispatch_id)

    def cancel(self, job_id: str) -> bool:
        """Drop a job that is waiting (ready or on a timer). In-flight and settling jobs are
        dropped when their ledger write is refused. True when the job was taken out."""
        item = self._held.get(job_id)
        if item is None or job_id in self._dispatch_of or job_id in self._settling:
            return False
        if self._queue(item).remove(job_id) is None:
            self._timers = [t for t in self._timers if t[2].job_id != job_id]
            heapq.heapify(self._timers)
            self._timed.discard(job_id)
        self.forget(job_id)
        return True

    def forget(self, job_id: str) -> None:
        """Stop tracking a job (finished, failed, cancelled or refused by the ledger)."""
        item = self._held.pop(job_id, None)
        if item is not None:
            self.admission.forget(item)
        self._settling.discard(job_id)
        self._update_backpressure()

    def nowhere(self) -> list[str]:
        """Held jobs in no queue, timer, call or write: what reconciliation must repair."""
        return [
            job_id
            for job_id, item in self._held.items()
            if job_id not in self._dispatch_of
            and job_id not in self._settling
            and job_id not in self._timed
            and job_id not in self._queue(item)
        ]

    def drop_nowhere(self, job_id: str) -> None:
        """Forget a job :meth:`nowhere` reported (the caller re-reads it from the ledger)."""
        if job_id in self.nowhere():
            self.forget(job_id)

    # --- dispatch -------------------------------------------------------------------------

    def next_dispatches(self, idle: Callable[[str], int] | None = None) -> list[Dispatch]:
        """Batches to send now: per pool, while its budget allows, the best ready stage queue
        with a job admission lets go (a stage queue with none is passed over this round).

        ``idle`` answers a pool's actors with no call running or queued. An accelerated pool
        whose backlog has run out (fewer jobs ready than call slots, none upstream) sends a
        call only to an idle actor: the last jobs go to the slots that free up first, not into
        a queue behind a running call while another actor has nothing to do."""
        now = self.clock()
        out: list[Dispatch] = []
        for pool in self.catalog.pools.values():
            # the launcher's budget follows the pool's size; admission may hold it lower
            sized = self._budgets.get(pool.name, pool.max_in_flight)
            budget = min(self.admission.budget(pool), sized)
            partial_slots = pool.partial_slots(budget) if pool.coalesces() else budget
            passed = set[str]()
            # calls left this round when only idle actors take one; None: the budget decides
            calls = idle(pool.name) if idle and self._run_out(pool, budget) else None
            while self._busy.get(pool.name, 0) < budget and calls != 0:
                stage = self._best_stage(pool.name, now, passed)
                if stage is None:
                    break
                size = pool.batch_size
                if pool.accelerated and size > 1:
                    size = spread_batch(size, self._ready_in(pool.name), budget)
                elif (
                    len(self._partial.get(pool.name, ())) >= partial_slots
                    and len(self._ready[stage]) < size
                ):  # every actor holds a partial batch: this one grows until one returns
                    passed.add(stage)
                    continue
                dispatch = self._take(pool.name, stage, size, now)
                if dispatch is None:
                    passed.add(stage)
                else:
                    out.append(dispatch)
                    calls = None if calls is None else calls - 1
        return out

    def _run_out(self, pool: PoolSpec, budget: int) -> bool:
        """Whether an accelerated ``pool``'s backlog has run out: jobs ready, fewer than its
        call slots, and none on the way to it (held at an earlier stage of a pipeline that
        uses it)."""
        if not pool.accelerated:
            return False
        ready = self._ready_in(pool.name)
        if ready == 0 or ready >= budget:
            return False
        ahead = self._ahead
        return not any(
            pool.name in ahead.get((i.pipeline, i.stage_index), ()) for i in self._held.values()
        )

    def set_budgets(self, budgets: dict[str, int]) -> None:
        """Calls each pool may have in flight from now on (its size follows its backlog); a
        pool not named keeps its spec's ``max_in_flight``."""
        self._budgets.update(budgets)

    def backlog(self) -> dict[str, int]:
        """Jobs ready per pool (for pool sizing)."""
        out: dict[str, int] = {}
        for stage, queue in self._ready.items():
            pool = self._pool_of.get(stage, stage)
            out[pool] = out.get(pool, 0) + len(queue)
        return out

    def upstream(self) -> dict[str, int]:
        """Per pool of a pipeline with an accelerated pool: held jobs at an earlier stage of that
        pipeline (its sizing looks ahead by these). Empty when no pipeline has an accelerated
        pool."""
        out: dict[str, int] = {}
        if self._ahead:  # most catalogs (the no-op pipeline's) have no accelerated pool
            for item in self._held.values():
                for pool in self._ahead.get((item.pipeline, item.stage_index), ()):
                    out[pool] = out.get(pool, 0) + 1
        return out

    def _ready_in(self, pool: str) -> int:
        pool_of = self._pool_of
        return sum(len(q) for stage, q in self._ready.items() if pool_of.get(stage, stage) == pool)

    def _best_stage(self, pool: str, now: float, passed: set[str]) -> str | None:
        best: tuple[float, str] | None = None
        for stage, queue in self._ready.items():
            if self._pool_of.get(stage, stage) != pool or stage in passed:
                continue
            score = queue.best_score(now)
            if score is not None and (best is None or score > best[0]):
                best = (score, stage)
        return None if best is None else best[1]

    def _take(self, pool: str, stage: str, size: int, now: float) -> Dispatch | None:
        queue, admission = self._ready[stage], self.admission
        refuses = (lambda t: admission.refuses_new(t, now)) if admission.capped else None
        items: list[WorkItem] = []
        while len(items) < size and (batch := queue.pop_many(size - len(items), now, refuses)):
            for item in batch:
                when = admission.token_for(item, now)
                if when is not None:  # no token for its source yet: wait on the timer heap
                    self._push_timer(when, item)
                    continue
                admission.dispatched(item, now)
                items.append(item)
        if not items:
            return None
        spec = self._spec(items[0])
        dispatch = Dispatch(next(self._seq), pool, stage, tuple(items), now, now + spec.lease_s)
        self._in_flight[dispatch.dispatch_id] = dispatch
        for item in items:
            self._dispatch_of[item.job_id] = dispatch.dispatch_id
        self._busy[pool] = self._busy.get(pool, 0) + 1
        if len(items) < size:
            self._partial.setdefault(pool, set()).add(dispatch.dispatch_id)
        return dispatch

    def release(self, dispatch_id: int, keep: Sequence[WorkItem] = ()) -> None:
        """Undo a dispatch that was not sent (its start write failed or was refused for some
        items): ``keep`` go back to the front of their queue, the rest are forgotten."""
        dispatch = self._close(dispatch_id)
        if dispatch is None:
            return
        kept = {i.job_id for i in keep}
        for item in dispatch.items:
            if item.job_id in kept:
                self.admission.released(item)
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
        return self._settle_all(
            self._interpret(item, dispatch.stage, result, duration)
            for item, result in zip(dispatch.items, results, strict=True)
        )

    def lost(self, dispatch_id: int) -> list[Outcome]:
        """The call died with its actor: its items spend their loss budget now."""
        dispatch = self._close(dispatch_id)
        if dispatch is None:
            return []
        return self._settle_all(self._failed(i, dispatch.stage, ACTOR_LOST) for i in dispatch.items)

    def expire_leases(self) -> list[Outcome]:
        """Retry (or fail) the items of every dispatch whose lease ran out."""
        now = self.clock()
        outcomes: list[Outcome] = []
        for dispatch_id in [d for d, x in self._in_flight.items() if x.lease_deadline <= now]:
            outcomes += self.lost_lease(dispatch_id)
        return outcomes

    def lost_lease(self, dispatch_id: int) -> list[Outcome]:
        """The call did not answer within its lease."""
        dispatch = self._close(dispatch_id)
        if dispatch is None:
            return []
        return self._settle_all(self._failed(i, dispatch.stage, LEASE_LOST) for i in dispatch.items)

    def fire_timers(self) -> int:
        """Move retries whose delay is over back to their ready queue."""
        now = self.clock()
        fired = 0
        while self._timers and self._timers[0][0] <= now:
            _, _, item = heapq.heappop(self._timers)
            self._timed.discard(item.job_id)
            if item.job_id in self._held:
                if not self.admission.keeps_age(item):
                    item.ready_at = now
                self._queue(item).push(item)
                fired += 1
        return fired

    def next_timer_in(self) -> float | None:
        """Seconds until the next retry is due (``None`` without timers)."""
        return max(0.0, self._timers[0][0] - self.clock()) if self._timers else None

    def apply(self, outcome: Outcome, *, accepted: bool) -> None:
        """Act on an outcome once the ledger said yes (``accepted``) or no."""
        item = outcome.item
        self._settling.discard(item.job_id)
        if not accepted or isinstance(outcome, Finish | Fail):
            self.forget(item.job_id)
            return
        if isinstance(outcome, Advance):
            item.outputs = {**item.outputs, outcome.stage: outcome.output}
            item.stage_index += 1
            item.attempt, item.errors, item.losses = 1, 0, 0
            item.ready_at = self.clock()
            self._queue(item).push(item)
        else:
            item.attempt, item.errors, item.losses = (
                outcome.attempt + 1,
                outcome.errors,
                outcome.losses,
            )
            self._push_timer(self.clock() + outcome.delay_s, item)

    def unstorable(self, outcome: Outcome, error: IngestError) -> Fail | None:
        """The ledger refused to store ``outcome`` (a value it cannot hold, such as a NaN in a
        stage's output for PostgreSQL, or a damaged record): the job fails at its stage with
        the ledger's reason instead, written like any other outcome (it stays settling). A
        refused :class:`Fail` gives ``None``: the record itself is damaged, the job is dropped
        (the caller applies the refusal)."""
        if isinstance(outcome, Fail):
            return None
        item = outcome.item
        failure = StageFailure(error.error_type, error.message, retryable=False)
        attempt = outcome.attempt if isinstance(outcome, Retry) else item.attempt
        return Fail(item, outcome.stage, failure, attempt, item.errors, item.losses)

    # --- helpers --------------------------------------------------------------------------

    def _settle_all(self, outcomes: Iterable[Outcome]) -> list[Outcome]:
        out = list(outcomes)
        self._settling.update(o.item.job_id for o in out)
        return out

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
        spec = self._spec(item)
        error = failure.as_error()
        errors, losses = item.errors, item.losses
        if failure.lost:
            losses += 1
            policy, spent = spec.loss_retry, losses
        else:
            errors += 1
            policy, spent = spec.retry, errors
        if policy.should_retry(error, spent):
            delay = policy.delay_s(spent, error)
            return Retry(item, stage, failure, item.attempt, delay, errors, losses)
        return Fail(item, stage, failure, item.attempt, errors, losses)

    def _push_timer(self, when: float, item: WorkItem) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), item))
        self._timed.add(item.job_id)

    def _close(self, dispatch_id: int) -> Dispatch | None:
        dispatch = self._in_flight.pop(dispatch_id, None)
        if dispatch is not None:
            self._busy[dispatch.pool] -= 1
            partial = self._partial.get(dispatch.pool)
            if partial:
                partial.discard(dispatch_id)
            for item in dispatch.items:
                if self._dispatch_of.get(item.job_id) == dispatch_id:
                    del self._dispatch_of[item.job_id]
        return dispatch

    def _spec(self, item: WorkItem) -> StageSpec:
        return self.catalog.pipeline(item.pipeline).stages[item.stage_index]

    def _queue(self, item: WorkItem) -> FairQueue:
        stage = self._spec(item).stage
        queue = self._ready.get(stage)
        if queue is None:
            admission = self.admission
            queue = self._ready[stage] = FairQueue(
                self._aging_s, weight=admission.weight, key=admission.order_key(stage),
                min_weight=lambda: admission.min_weight,
            )  # fmt: skip
        return queue

    def _update_backpressure(self) -> None:
        held = len(self._held)
        if not self.paused and held >= self.high_watermark:
            self.paused = True
        elif self.paused and held <= self.low_watermark:
            self.paused = False

    def waiting_by_tenant(self) -> Counter[str]:
        """Held jobs not in a call, per tenant (ready, on a timer or settling)."""
        return Counter(i.tenant_id for j, i in self._held.items() if j not in self._dispatch_of)

    def in_flight(self) -> list[Dispatch]:
        """Dispatches currently out."""
        return list(self._in_flight.values())

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
            timers=len(self._timed),
            in_flight=dict(self._busy),
            settling=len(self._settling),
            paused=self.paused,
        )


def _accelerated_ahead(catalog: Catalog) -> dict[tuple[str, int], tuple[str, ...]]:
    """``(pipeline, stage index)`` -> the pools of the stages after it, in a pipeline with an
    accelerated pool: the accelerator's actors start ahead of the work (a model loads onto the
    device), and so do the other pools' (their start, a worker process and maybe a model, falls
    before the accelerator's work, not in it, where it would take the cores from its feed)."""
    accelerated = {name for name, pool in catalog.pools.items() if pool.accelerated}
    out: dict[tuple[str, int], tuple[str, ...]] = {}
    for pipeline in catalog.pipelines.values():
        if not {s.pool_name for s in pipeline.stages} & accelerated:
            continue
        for i in range(len(pipeline.stages) - 1):
            out[(pipeline.name, i)] = tuple(sorted({s.pool_name for s in pipeline.stages[i + 1 :]}))
    return out
