"""Keeping the Dispatcher true to the ledger: recovery, look-ups, control commands and
reconciliation. Ray-free; part of :class:`~ingest_ray.runtime.loop.DispatchLoop`.

- **Recovery** (start): every queued job is queued again; every processing job is taken over as
  the next try of its stage (its old stage actors died with the old Dispatcher), waiting for its
  retry time if the ledger scheduled one.
- **Look-ups**: a job whose write was refused, or that a command named, is read again and
  resumed if it is still queued or processing.
- **Commands**: a cancel drops a waiting job, tells a running stage to stop, and takes back the
  job's side effects (the index rows) before its inbox entry is acknowledged.
- **Reconciliation** (every few seconds): held jobs that are nowhere, processing jobs whose
  lease expired with nobody holding them, queued jobs nobody holds, and held jobs the ledger
  says are finished are repaired; each repair is counted by kind. Queued jobs are taken from
  the ledger's fair backlog index (``backlog.py``: by tenant weight, then aged priority), at
  start-up too, so the jobs beyond memory come in the order they will be served.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ingest_ray.control import CancelJob, InboxEntry, RequeueJob
from ingest_ray.errors import BadJobRecordError, IngestError
from ingest_ray.ledger.base import Job, JobFilter, TransitionOutcome
from ingest_ray.runtime.backlog import Backlog
from ingest_ray.runtime.effects import (
    compensation_item,
    reject_requests,
    resume_request,
    work_item_from_job,
)
from ingest_ray.runtime.parts import Inbox, LedgerReader
from ingest_ray.runtime.work import WorkItem
from ingest_ray.states import JobStatus

if TYPE_CHECKING:
    from ingest_ray.pipelines.catalog import Catalog
    from ingest_ray.runtime.loop import DispatchLoop

log = logging.getLogger(__name__)
PAGE = 1000
#: a job held this long without moving is compared with the ledger by reconciliation
STALE_WAIT_S = 30.0
#: how often the inbox's unacknowledged entries are read again
PENDING_EVERY_S = 2.0


class Recovery:
    """What the loop does to stay true to the ledger."""

    def __init__(
        self, loop: DispatchLoop, ledger: LedgerReader, inbox: Inbox, *, consumer: str
    ) -> None:
        self.loop, self.core, self.ledger, self.inbox = loop, loop.core, ledger, inbox
        self.consumer = consumer
        self.backlog = Backlog(ledger)
        self.repairs: Counter[str] = Counter()
        self._lookups: dict[str, bool] = {}  # job id -> whether its try was lost
        self._cancels: dict[str, list[str]] = {}  # running job -> inbox entries to acknowledge
        self._retry_at: dict[str, float] = {}  # inbox entry -> when to act on it again
        self._window = itertools.count()
        self._pending_at = 0.0

    # --- start ----------------------------------------------------------------------------

    async def recover(self) -> int:
        """Take over every processing job and queue queued ones, up to the high watermark;
        queued ones in fair order from the backlog index."""
        cap = self.core.high_watermark
        jobs = await self._page_all(JobFilter(status=JobStatus.PROCESSING), cap)
        ids = await self.backlog.pull_ids(self.core, cap - len(jobs), refresh=True)
        for start in range(0, len(ids), PAGE):
            jobs += [j for j in await self._get_many(ids[start : start + PAGE]) if j is not None]
        return await self.resume(jobs, lost=set())

    async def _get_many(self, job_ids: list[str]) -> list[Job | None]:
        return await asyncio.to_thread(self.ledger.get_many, job_ids)

    async def _page_all(self, flt: JobFilter, cap: int) -> list[Job]:
        out: list[Job] = []
        cursor: str | None = None
        while len(out) < cap:
            page = await asyncio.to_thread(self.ledger.list_jobs, flt, cursor=cursor, limit=PAGE)
            out += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        return out

    async def resume(self, jobs: Iterable[Job | None], *, lost: set[str]) -> int:
        """Hold jobs again that are queued or processing and not held (see the module doc)."""
        queued: list[WorkItem] = []
        taken_over: list[Job] = []
        rejected: list[tuple[Job, IngestError]] = []
        adopted = 0
        for job in jobs:
            if job is None or self.core.holds(job.job_id):
                continue
            try:
                item = work_item_from_job(job, self.catalog)
            except IngestError as exc:
                rejected.append((job, exc))
                continue
            if item is None:
                continue
            if job.status is JobStatus.QUEUED:
                queued.append(item)
            elif job.job_id in lost:
                self.loop.settle_later([self.core.adopt_lost(item)])
                adopted += 1
            else:
                taken_over.append(job)
        taken = self.core.admit(queued) + await self._take_over(taken_over)
        await self._reject(rejected)
        if taken or adopted:
            self.loop.wake()
        return taken + adopted

    async def _take_over(self, jobs: list[Job]) -> int:
        if not jobs:
            return 0
        results = await self.loop.write([resume_request(j, self.catalog, lost=False) for j in jobs])
        if results is None:  # the ledger is away: try these again later
            self.look_up(j.job_id for j in jobs)
            return 0
        now_wall, now = datetime.fromtimestamp(self.loop.wall(), UTC), self.core.clock()
        ready: list[tuple[WorkItem, float | None]] = []
        for job, result in zip(jobs, results, strict=True):
            item = work_item_from_job(job, self.catalog)
            if item is None:
                continue
            if not isinstance(result, TransitionOutcome):
                self.look_up([job.job_id])  # moved meanwhile (a late write of the old try)
                continue
            item.attempt = job.attempts + 1
            when = None
            if job.next_attempt_at is not None:
                when = now + (job.next_attempt_at - now_wall).total_seconds()
            ready.append((item, when))
        return self.core.admit_at(ready)

    async def _reject(self, jobs: list[tuple[Job, IngestError]]) -> None:
        """Fail jobs the runtime cannot run (they would wait forever, or stop every recovery):
        a pipeline the catalog does not know, a record without a readable source."""
        requests = []
        for job, error in jobs:
            bad = isinstance(error, BadJobRecordError)
            reason = str(error) if bad else f"unknown pipeline {job.pipeline!r}"
            if bad or job.status is JobStatus.QUEUED:  # (a processing job of a pipeline not
                # known here may be another catalog's, mid-run: left to it, only logged)
                requests += reject_requests(job, self.loop.settings, reason, type(error).__name__)
            log.warning("job %s: %s", job.job_id, reason)
        if requests:
            await self.loop.write(requests)

    # --- look-ups -------------------------------------------------------------------------

    def look_up(self, job_ids: Iterable[str], *, lost: bool = False) -> None:
        """Read these jobs again in the next round."""
        for job_id in job_ids:
            self._lookups[job_id] = self._lookups.get(job_id, False) or lost

    async def recheck(self) -> None:
        """Resume the jobs that were asked to be looked up."""
        if not self._lookups:
            return
        batch = dict(itertools.islice(self._lookups.items(), PAGE))
        for job_id in batch:
            del self._lookups[job_id]
        try:
            jobs = await asyncio.to_thread(self.ledger.get_many, list(batch))
        except Exception:
            self._lookups.update(batch)  # the ledger is away: keep them for later
            raise
        await self.resume(jobs, lost={j for j, was_lost in batch.items() if was_lost})

    # --- commands -------------------------------------------------------------------------

    async def read_inbox(self) -> None:
        """Act on control commands; acknowledge each once it is done."""
        now = self.core.clock()
        pending = now >= self._pending_at  # own unacknowledged entries: now and then
        if pending:
            self._pending_at = now + PENDING_EVERY_S
        entries = await asyncio.to_thread(self.inbox.read, self.consumer, 500, pending=pending)
        done: list[str] = []
        for entry in entries:
            if self._retry_at.get(entry.entry_id, 0.0) > now or self._waiting(entry):
                continue
            if await self._act(entry):
                done.append(entry.entry_id)
                self._retry_at.pop(entry.entry_id, None)
            else:
                self._retry_at[entry.entry_id] = now + 2.0
        if done:
            await asyncio.to_thread(self.inbox.ack, done)

    def _waiting(self, entry: InboxEntry) -> bool:
        return any(entry.entry_id in ids for ids in self._cancels.values())

    async def _act(self, entry: InboxEntry) -> bool:
        command = entry.command
        if isinstance(command, RequeueJob):
            self.look_up([command.job_id])
            return True
        if not isinstance(command, CancelJob):
            log.warning("dropping an unreadable control command %s", entry.entry_id)
            return True
        job_id = command.job_id
        dispatch = self.core.dispatch_of(job_id)
        if dispatch is not None or self.core.settling(job_id):
            if dispatch is not None:
                self.loop.launcher.cancel(dispatch, [job_id])
            self._cancels.setdefault(job_id, []).append(entry.entry_id)
            return False  # acknowledged once its call ended and its effects are taken back
        item = self.core.item(job_id)
        if item is not None and self.core.cancel(job_id):
            self.loop.metrics.inc("ingest_jobs_cancelled", item.pipeline)
        if item is None:
            jobs = await asyncio.to_thread(self.ledger.get_many, [job_id])
            item = compensation_item(jobs[0], self.catalog) if jobs[0] is not None else None
        return item is None or await self._compensate([item])

    def cancelled_while_running(self, items: list[WorkItem]) -> None:
        """Jobs whose write was refused because they were cancelled: take back their effects,
        then acknowledge the commands that asked for it."""
        if items:
            self.loop.spawn(self._compensate_then_ack(items))

    async def _compensate_then_ack(self, items: list[WorkItem]) -> None:
        if not await self._compensate(items):
            for item in items:  # the inbox entry stays; it is acted on again later
                self._cancels.pop(item.job_id, None)
            return
        entries = [e for i in items for e in self._cancels.pop(i.job_id, [])]
        if entries:
            await asyncio.to_thread(self.inbox.ack, entries)

    async def _compensate(self, items: list[WorkItem]) -> bool:
        """Run every compensating stage the jobs reached (an idempotent delete)."""
        calls: dict[tuple[str, str], list[WorkItem]] = {}
        for item in items:
            pipeline = self.catalog.pipeline(item.pipeline)
            for spec in pipeline.stages[: item.stage_index + 1]:
                if spec.compensate:
                    calls.setdefault((spec.pool_name, spec.stage), []).append(item)
        try:
            for (pool, stage), group in calls.items():
                inputs = [i.stage_input(stage) for i in group]
                await self.loop.launcher.compensate(pool, stage, inputs)
        except Exception as exc:
            self.loop.report_error("compensate", exc)
            return False
        return True

    def pending_cancels(self) -> int:
        """Cancelled running jobs whose effects are not yet taken back."""
        return len(self._cancels)

    # --- reconciliation -------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Compare the ledger with what is held and repair every difference."""
        for job_id in self.core.nowhere():
            self.core.forget(job_id)
            self._repair("held_nowhere", [job_id])
        expired = await asyncio.to_thread(self.ledger.expired_leases, limit=500)
        self._repair("lease_expired", [j for j in expired if not self.core.holds(j)], lost=True)
        room = self.core.low_watermark - self.core.stats().held
        if room > 0 and not self.core.paused:
            ids = await self.backlog.pull_ids(self.core, min(room, 5 * PAGE), refresh=True)
            self._repair("queued_not_held", ids)
        await self._check_held()

    async def _check_held(self) -> None:
        """Held jobs that have been waiting a while, against the ledger, a window at a time:
        finished or cancelled ones (a command that never arrived) are dropped."""
        held = self.core.waiting_since(self.core.clock() - STALE_WAIT_S)
        if not held:
            return
        start = (next(self._window) * PAGE) % len(held)
        window = held[start : start + PAGE]
        jobs = await asyncio.to_thread(self.ledger.get_many, window)
        for job_id, job in zip(window, jobs, strict=True):
            if job is not None and not job.status.is_terminal:
                continue
            item = self.core.item(job_id)
            dispatch = self.core.dispatch_of(job_id)
            if dispatch is not None:
                self.loop.launcher.cancel(dispatch, [job_id])  # its write will be refused
            elif item is not None and self.core.cancel(job_id):
                self.repairs["held_finished"] += 1
                if job is not None and job.status is JobStatus.CANCELLED:
                    await self._compensate([item])

    def _repair(self, kind: str, job_ids: list[str], *, lost: bool = False) -> None:
        if job_ids:
            self.repairs[kind] += len(job_ids)
            self.loop.metrics.inc("ingest_reconcile_repairs", kind, value=len(job_ids))
            self.look_up(job_ids, lost=lost)

    @property
    def catalog(self) -> Catalog:
        """The loop's catalog."""
        return self.loop.catalog
