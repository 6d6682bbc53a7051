"""``MappingWorker``: consumes ``mapping.events.v1`` and runs the mapping stage for each
indexed document, storing offsets only after the batch is applied.

An event already applied (same ``event_id``: the outbox delivers at least once) is skipped. An
event that cannot be applied becomes a ``mapping`` dead letter carrying the event's original
bytes, recorded in the ledger's outbox with the others of its batch, before the offsets are
stored; the worker steps an outbox relay of its own, so its letters go out even when no ingest
worker runs. If the ledger is away, the batch is read again from its own offsets.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

import redis

from ingest_ray.config import Settings
from ingest_ray.deadletters import LetterKind, Origin, Subject, message_letter
from ingest_ray.dedupe import AppliedEvents
from ingest_ray.errors import IngestError
from ingest_ray.events import MappingRequest, decode
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.base import OutboxMessage
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.outbox import OutboxRelay
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.retry import RetryPolicy
from ingest_ray.runtime.effects import compensation_item
from ingest_ray.runtime.priority import RAY_WORKER_NICENESS, lower_thread_priority
from ingest_ray.runtime.stage_host import StageHost
from ingest_ray.runtime.work import StageFailure, WorkItem
from ingest_ray.workers.base import Worker, WorkerHealth


class MappingWorker(Worker):
    """Maps documents to entities as their mapping events arrive."""

    kind: ClassVar[str] = "mapping"

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(settings, name=name)
        self.catalog = catalog
        self.retry = retry or RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=10)
        kafka = KafkaClient.from_settings(settings)
        kafka.ensure_topics()
        self._consumer = kafka.consumer(
            f"{settings.consumer_group}-mapping", [settings.topic_mapping]
        )
        self._producer = kafka.producer()
        self._ledger = open_ledger(settings)
        self._relay = OutboxRelay(
            self._ledger, self._producer, consumer=f"mapping/{self.name}", park=lambda e, r: None
        )
        self._applied = AppliedEvents(
            redis.Redis.from_url(settings.redis_url), RedisKeys(settings.redis_prefix), "mapping"
        )
        self._host = StageHost({"mapping": catalog.stages["mapping"]}, settings)
        self._thread = threading.Thread(target=self._loop, name="mapping", daemon=True)
        self._polling = threading.Event()
        self.mapped = 0
        self.skipped = 0
        self._busy = False
        self._lag = 0
        self._lag_at = 0.0

    def _start(self) -> None:
        self._polling.set()
        self._thread.start()

    def _loop(self) -> None:
        # mapping comes after the parser: where this worker shares the cores (the local run's
        # process, next to the pools), the parser and its feed go first, as for the pools after
        # the parser (Ray's worker niceness, plus downstream_nice)
        lower_thread_priority(self.settings.downstream_nice, base=RAY_WORKER_NICENESS)
        backoff = 0.0
        while self._polling.is_set():
            messages: list[Any] = []
            try:
                messages = self._consumer.poll_batch(50, timeout=0.5)
                self._busy = bool(messages)
                if messages:
                    asyncio.run(self._apply(messages))
                    self._consumer.store(messages)
                self._relay.step()
                self._busy = False
                self._measure_lag()
                backoff = 0.0
                self.outages.up("ledger unreachable")
            except Exception as exc:  # read the batch again later; visible in health
                if messages:
                    self._consumer.seek_back(messages)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.outages.down("ledger unreachable")
                backoff = min(5.0, max(0.2, backoff * 2))
                time.sleep(backoff)

    def _measure_lag(self) -> None:
        """Lag is read on the polling thread (the consumer is not shared across threads)."""
        if time.monotonic() - self._lag_at > 5.0:
            self._lag_at = time.monotonic()
            self._lag = sum(self._consumer.lag(timeout=1.0).values())

    async def _apply(self, messages: list[Any]) -> None:
        """Map every new event of a batch; dead-letter the ones that cannot be mapped."""
        events = [(m, _event_id(m.value())) for m in messages]
        seen = self._applied.seen([e for _, e in events if e])
        letters: list[OutboxMessage] = []
        done: list[str] = []
        for msg, event_id in events:
            if event_id and (event_id in seen or event_id in done):
                self.skipped += 1
                continue
            letter = await self._map(msg)
            if letter is not None:
                letters.append(letter)
            if event_id:
                done.append(event_id)
        if letters:
            self._ledger.outbox_put(letters)
        self._applied.mark(done)

    async def _map(self, msg: Any) -> OutboxMessage | None:
        raw = msg.value()
        try:
            event = decode(raw)
            if not isinstance(event, MappingRequest):
                raise IngestError(f"expected mapping.request, got {event.event_type}")
            item = compensation_item(self._ledger.get(event.job_id), self.catalog)
            if item is None:
                raise IngestError(f"job {event.job_id}: pipeline unknown to this worker")
        except IngestError as exc:
            return self._letter(msg, exc.error_type, str(exc), Subject(stage="mapping"))
        failure = await self._attempts(item)
        if failure is None:
            return None
        self.metrics.inc("ingest_stage_attempts", "mapping", "fail")
        subject = Subject(item.job_id, item.tenant_id, item.doc_key, "mapping", item.attempt)
        return self._letter(msg, failure.error_type, failure.message, subject)

    async def _attempts(self, item: WorkItem) -> StageFailure | None:
        """Run the stage with the retry policy; the last failure, or None on success."""
        failure: StageFailure | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            item.attempt = attempt
            (result,) = await self._host.run("mapping", [item.stage_input("mapping")], 120.0)
            if not isinstance(result, StageFailure):
                self.mapped += 1
                self.metrics.inc("ingest_stage_attempts", "mapping", "ok")
                return None
            failure, error = result, result.as_error()
            if not self.retry.should_retry(error, attempt):
                break
            self.metrics.inc("ingest_stage_attempts", "mapping", "retry")
            await asyncio.sleep(self.retry.delay_s(attempt, error))
        return failure

    def _letter(self, msg: Any, error_type: str, reason: str, subject: Subject) -> OutboxMessage:
        self.metrics.inc("ingest_dead_letters", "mapping")
        origin = Origin(msg.topic(), msg.partition(), msg.offset())
        return message_letter(
            self.settings.topic_deadletter, kind=LetterKind.MAPPING, value=msg.value(),
            key=msg.key(), origin=origin, reason=reason, error_type=error_type, subject=subject,
            max_bytes=self.settings.kafka_max_message_bytes,
            event_id=f"dlq:{origin.topic}:{origin.partition}:{origin.offset}",
        )  # fmt: skip

    def drain(self, grace_s: float) -> dict[str, Any]:
        """Stop polling after the current batch (its offsets are stored), send the outbox's
        due letters, commit."""
        self._polling.clear()
        self._thread.join(timeout=grace_s + 5)
        try:
            while self._relay.step():
                pass
        except Exception as exc:  # the ledger is away: the relay of a later run sends them
            self.last_error = f"drain relay: {exc}"
        self._consumer.close()
        self._producer.close(timeout=10)
        return {"mapped": self.mapped, "skipped_duplicates": self.skipped}

    def _stop_components(self) -> None:
        asyncio.run(self._host.aclose())
        self._ledger.close()

    def health(self) -> WorkerHealth:
        """Liveness, lag on the mapping topic, whether a batch is being mapped."""
        health = super().health()
        health.lag = self._lag
        health.in_flight = int(self._busy)
        health.details = {**health.details, "mapped": self.mapped, "skipped": self.skipped}
        return health


def _event_id(raw: bytes | None) -> str | None:
    try:
        return decode(raw).event_id
    except IngestError:
        return None
