"""The Dispatcher's ledger cache: coalesces the transitions of many jobs into one pipelined
round trip. It lives in the Dispatcher's process (a separate actor cost a Ray call per write and
about a tenth of the CPU per job), on threads of its own.

Callers await their own results. When no flush is in flight, one starts at once; while one is,
the next starts when ``max_batch`` requests are waiting or ``max_wait_s`` after it could have
(so under load batches grow while the ledger works, and a lone write waits for nothing). Up to
``max_flushes`` flushes are in flight at once, and each caller's requests go into one flush, in
order (so a caller's writes for one job apply in the order given). A caller is answered only
after the ledger answered: nothing is acknowledged that is not durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ingest_ray.ledger.base import Ledger, TransitionRequest
from ingest_ray.runtime.parts import TransitionResult

_Waiter = tuple[list[TransitionRequest], asyncio.Future[list[TransitionResult]]]


class BatchingWriter:
    """A queue of waiting callers and at most ``max_flushes`` flushes (the loop's
    :class:`~ingest_ray.runtime.parts.TransitionWriter`)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_batch: int = 1000,
        max_wait_s: float = 0.002,
        max_flushes: int = 2,
    ) -> None:
        self._ledger = ledger
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_flushes = max_flushes
        self._waiting: list[_Waiter] = []
        self._queued = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # references, so none is collected
        self._flushers = 0  # flush loops running; each stops only once nothing waits
        self._flushing = 0
        self.flushes = 0
        # its own threads: a flush never queues behind other blocking work of the process
        self._threads = ThreadPoolExecutor(max_flushes, thread_name_prefix="ledger-flush")

    def close(self) -> None:
        """Let the flush threads go (a flush in flight still finishes)."""
        self._threads.shutdown(wait=False)

    async def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionResult]:
        """Queue ``requests`` and wait until the ledger applied (or refused) each of them."""
        if not requests:
            return []
        future: asyncio.Future[list[TransitionResult]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(requests), future))
        self._queued += len(requests)
        if self._flushers < self.max_flushes:
            # counted here and uncounted in the loop's last step (not by a done callback, which
            # runs later: a request queued in between would find no loop and wait forever)
            self._flushers += 1
            task = asyncio.create_task(self._flush_loop())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._queued >= self.max_batch:
            self._wake.set()
        return await future

    async def _flush_loop(self) -> None:
        try:
            while self._waiting:
                if self._flushing:  # the ledger is busy with a flush: let this batch grow
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.max_wait_s)
                    self._wake.clear()
                batch = self._take()
                if batch:
                    self._flushing += 1
                    try:
                        await self._flush(batch)
                    finally:
                        self._flushing -= 1
        finally:
            self._flushers -= 1

    def _take(self) -> list[_Waiter]:
        batch: list[_Waiter] = []
        size = 0
        while self._waiting and (not batch or size + len(self._waiting[0][0]) <= self.max_batch):
            waiter = self._waiting.pop(0)
            batch.append(waiter)
            size += len(waiter[0])
        self._queued -= size
        return batch

    async def _flush(self, batch: list[_Waiter]) -> None:
        requests = [r for reqs, _ in batch for r in reqs]
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._threads, self._ledger.transition_many, requests
            )
        except Exception as exc:  # the ledger is away: every caller of this batch learns it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.flushes += 1
        start = 0
        for reqs, future in batch:
            if not future.done():
                future.set_result(results[start : start + len(reqs)])
            start += len(reqs)
