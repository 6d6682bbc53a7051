"""``MappingWorker``: consumes ``mapping.events.v1`` and runs the mapping stage for each
indexed document, storing offsets only after the mapping is stored."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.events import DeadLetter, MappingRequest, decode
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.retry import RetryPolicy
from ingest_ray.runtime.effects import work_item_from_job
from ingest_ray.runtime.stage_host import StageHost
from ingest_ray.runtime.work import StageFailure, WorkItem
from ingest_ray.states import JobStatus
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
        self._host = StageHost({"mapping": catalog.stages["mapping"]}, settings)
        self._thread = threading.Thread(target=self._loop, name="mapping", daemon=True)
        self._polling = threading.Event()
        self.mapped = 0
        self._busy = False
        self._lag = 0
        self._lag_at = 0.0

    def _start(self) -> None:
        self._polling.set()
        self._thread.start()

    def _loop(self) -> None:
        while self._polling.is_set():
            try:
                messages = self._consumer.poll_batch(50, timeout=0.5)
                self._busy = bool(messages)
                for msg in messages:
                    asyncio.run(self._map(msg.value()))
                self._consumer.store(messages)
                self._busy = False
                self._measure_lag()
            except Exception as exc:  # keep going; visible in health
                self.last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(1.0)

    def _measure_lag(self) -> None:
        """Lag is read on the polling thread (the consumer is not shared across threads)."""
        if time.monotonic() - self._lag_at > 5.0:
            self._lag_at = time.monotonic()
            self._lag = sum(self._consumer.lag(timeout=1.0).values())

    async def _map(self, raw: bytes | None) -> None:
        try:
            event = decode(raw)
            if not isinstance(event, MappingRequest):
                raise IngestError(f"expected mapping.request, got {event.event_type}")
            job = self._ledger.get(event.job_id)
            item = work_item_from_job(
                job.model_copy(update={"status": JobStatus.PROCESSING}), self.catalog
            )
        except IngestError as exc:
            self._dead_letter(exc.error_type, str(exc), raw)
            return
        assert item is not None
        failure = await self._attempts(item)
        if failure is not None:
            self.metrics.inc("ingest_stage_attempts", "mapping", "fail")
            self._dead_letter(failure.error_type, failure.message, raw, job_id=item.job_id)

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

    def _dead_letter(self, error_type: str, reason: str, raw: bytes | None, **ids: Any) -> None:
        letter = DeadLetter(
            reason=reason, error_type=error_type, stage="mapping",
            origin_topic=self.settings.topic_mapping,
            raw=(raw or b"").decode("utf-8", errors="replace"), **ids,
        )  # fmt: skip
        self._producer.send(self.settings.topic_deadletter, letter, key=ids.get("job_id"))
        self._producer.flush()
        self.metrics.inc("ingest_dead_letters", "mapping")

    def drain(self, grace_s: float) -> dict[str, Any]:
        """Stop polling after the current batch (its offsets are stored), flush, commit."""
        self._polling.clear()
        self._thread.join(timeout=grace_s + 5)
        self._consumer.close()
        self._producer.close()
        return {"mapped": self.mapped}

    def _stop_components(self) -> None:
        asyncio.run(self._host.aclose())
        self._ledger.close()

    def health(self) -> WorkerHealth:
        """Liveness, lag on the mapping topic, whether a batch is being mapped."""
        health = super().health()
        health.lag = self._lag
        health.in_flight = int(self._busy)
        health.details = {**health.details, "mapped": self.mapped}
        return health
