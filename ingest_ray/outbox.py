"""The outbox relay: publishes what the ledger recorded, then marks it sent.

Messages that follow a ledger change (results, mapping events, dead letters) are written into
the ledger's outbox in the same atomic step as the change. The relay claims a batch, produces it
with the idempotent producer, waits for the broker's acknowledgements and acknowledges exactly
the delivered entries; the rest stay in the outbox and are sent again (a Kafka outage of any
length loses nothing). A message the broker refuses for good (too large, say) is parked, with its
reason, instead of blocking the ones behind it. Redelivery after a crash can publish a message
twice; it keeps its ``event_id``, which consumers dedupe on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from ingest_ray.errors import KafkaDeliveryError
from ingest_ray.ledger.base import OutboxEntry


class OutboxStore(Protocol):
    """The part of the ledger the relay uses."""

    def outbox_claim(
        self, consumer: str, *, limit: int = 500, min_idle_s: float = 60.0
    ) -> list[OutboxEntry]: ...
    def outbox_ack(self, entry_ids: Sequence[str]) -> None: ...
    def outbox_depth(self) -> int: ...


class MessageSink(Protocol):
    """The part of :class:`ingest_ray.kafka.Producer` the relay uses."""

    def send_raw(
        self, topic: str, value: bytes, *, key: str | None, headers: Mapping[str, str] | None = None
    ) -> Future[Any]: ...
    def flush(self, timeout: float = 30.0) -> None: ...


@dataclass
class RelayStats:
    """Running totals of one relay."""

    sent: int = 0
    parked: int = 0
    failed_sends: int = 0
    steps: int = 0
    last_error: str | None = None
    error_since: float | None = None


Park = Callable[[OutboxEntry, str], None]


class OutboxRelay:
    """Claim, send, acknowledge: one :meth:`step` at a time (the caller loops)."""

    def __init__(
        self,
        store: OutboxStore,
        sink: MessageSink,
        *,
        consumer: str,
        park: Park,
        batch: int = 500,
        flush_timeout_s: float = 10.0,
        reclaim_idle_s: float = 60.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._sink, self._park = store, sink, park
        self.consumer = consumer
        self.batch = batch
        self.flush_timeout_s = flush_timeout_s
        self.reclaim_idle_s = reclaim_idle_s
        self._wall = wall
        self.stats = RelayStats()

    def step(self) -> int:
        """Send one batch; answers how many entries were delivered (and acknowledged)."""
        self.stats.steps += 1
        entries = self._store.outbox_claim(
            self.consumer, limit=self.batch, min_idle_s=self.reclaim_idle_s
        )
        if not entries:
            return 0
        futures, refused = self._send(entries)
        try:
            self._sink.flush(self.flush_timeout_s)
        except KafkaDeliveryError as exc:  # some did not go out: they stay in the outbox
            self.note_error(str(exc))
        delivered, parked = [], []
        for entry, future in futures:
            error = _failure(future)
            if error is None:
                delivered.append(entry.entry_id)
            elif error.permanent:
                refused.append((entry, str(error)))
            else:
                self.stats.failed_sends += 1
        for entry, reason in refused:
            self._park(entry, reason)
            parked.append(entry.entry_id)
        self._store.outbox_ack(delivered + parked)
        self.stats.sent += len(delivered)
        self.stats.parked += len(parked)
        if len(delivered) == len(futures) and not refused:
            self._clear_error()
        return len(delivered)

    def _send(
        self, entries: list[OutboxEntry]
    ) -> tuple[list[tuple[OutboxEntry, Future[Any]]], list[tuple[OutboxEntry, str]]]:
        futures: list[tuple[OutboxEntry, Future[Any]]] = []
        refused: list[tuple[OutboxEntry, str]] = []
        for entry in entries:
            m = entry.message
            try:
                future = self._sink.send_raw(m.topic, m.value, key=m.key, headers=dict(m.headers))
            except KafkaDeliveryError as exc:
                if exc.permanent:
                    refused.append((entry, str(exc)))
                    continue
                self.note_error(str(exc))
                break  # the local queue is full: the rest waits for the next step
            futures.append((entry, future))
        return futures, refused

    def note_error(self, reason: str) -> None:
        """Record a failure (``error_since`` is the wall time it began)."""
        self.stats.last_error = reason
        if self.stats.error_since is None:
            self.stats.error_since = self._wall()

    def _clear_error(self) -> None:
        self.stats.last_error = None
        self.stats.error_since = None


def _failure(future: Future[Any]) -> KafkaDeliveryError | None:
    if not future.done():
        return KafkaDeliveryError("no delivery report before the flush timeout")
    error = future.exception()
    if error is None:
        return None
    if isinstance(error, KafkaDeliveryError):
        return error
    return KafkaDeliveryError(str(error))
