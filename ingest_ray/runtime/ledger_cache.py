"""Ledger cache: coalesces the transitions of many jobs into one pipelined Redis round trip.

Callers await their own results; a flush happens when ``max_batch`` requests are waiting or
``max_wait_s`` after the first one arrived, and each caller is answered only after Redis
answered (nothing is acknowledged that is not durable in the ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import ray

from ingest_ray.config import Settings
from ingest_ray.errors import LedgerError
from ingest_ray.ledger.base import Ledger, TransitionOutcome, TransitionRequest
from ingest_ray.ledger.factory import open_ledger

TransitionResult = TransitionOutcome | LedgerError


class BatchingWriter:
    """The pure-asyncio core: a queue of pending transitions and one flusher at a time."""

    def __init__(self, ledger: Ledger, *, max_batch: int = 1000, max_wait_s: float = 0.002) -> None:
        self._ledger = ledger
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[tuple[TransitionRequest, asyncio.Future[TransitionResult]]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.flushes = 0

    async def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionResult]:
        """Queue ``requests`` and wait until Redis applied (or refused) each of them."""
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self._pending += list(zip(requests, futures, strict=True))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        if len(self._pending) >= self.max_batch:
            self._wake.set()
        return list(await asyncio.gather(*futures))

    async def _flush_loop(self) -> None:
        while self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.max_wait_s)
            self._wake.clear()
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                results = await asyncio.to_thread(
                    self._ledger.transition_many, [req for req, _ in batch]
                )
            except Exception as exc:  # Redis away: every caller of this batch learns it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.flushes += 1
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class LedgerCache:
    """The named Ray actor every runtime component writes transitions through."""

    def __init__(self, settings: Settings) -> None:
        self._writer = BatchingWriter(open_ledger(settings))

    async def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionResult]:
        """See :meth:`BatchingWriter.transition_many`."""
        return await self._writer.transition_many(requests)

    async def flushes(self) -> int:
        """How many round trips were made (for tests and metrics)."""
        return self._writer.flushes


RemoteLedgerCache = ray.remote(LedgerCache)
