"""Kafka ingress: consumer-group members that admit requests and hand them to the Dispatcher.

:class:`IngressLoop` is the logic (poll a batch, admit it, hand the jobs over, store offsets only
after the Dispatcher accepted them, pause and resume on backpressure); :class:`KafkaIngress` is
the Ray actor that runs it on a thread of its own. Polling never waits on stage work: the
Dispatcher's ``submit`` only queues in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray

from ingest_ray.admission import Admitted, Admitter
from ingest_ray.config import Settings
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.kafka.deadletter import KafkaDeadLetterSink
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.metrics import RuntimeMetrics, Snapshot
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.work import WorkItem
from ingest_ray.states import JobStatus
from ingest_ray.workers.admit import to_record


class BatchConsumer(Protocol):
    """The part of :class:`ingest_ray.kafka.Consumer` the loop uses."""

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Any]: ...
    def store(self, messages: Sequence[Any]) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


def work_item(admitted: Admitted) -> WorkItem:
    """The Dispatcher's view of a freshly admitted job."""
    request = admitted.request
    return WorkItem(
        job_id=admitted.outcome.job_id, tenant_id=request.tenant_id, doc_key=request.doc_key,
        pipeline=admitted.pipeline, priority=request.priority, source=request.source,
        metadata=dict(request.metadata),
    )  # fmt: skip


@dataclass
class IngressStats:
    """Running totals of one ingress."""

    messages: int = 0
    created: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    paused: bool = False
    last_error: str | None = None
    lag: dict[str, int] = field(default_factory=dict)


class IngressLoop:
    """One consumer's admit-and-hand-over loop."""

    def __init__(
        self,
        consumer: BatchConsumer,
        admitter: Admitter,
        submit: Callable[[list[WorkItem], list[str]], bool],
        is_paused: Callable[[], bool],
        *,
        batch: int = 500,
        poll_s: float = 0.2,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._consumer, self._admitter = consumer, admitter
        self._submit, self._is_paused = submit, is_paused
        self._batch, self._poll_s = batch, poll_s
        self.metrics = metrics or RuntimeMetrics()
        self.stats = IngressStats()

    def step(self) -> int:
        """One poll; returns the number of messages handled."""
        if self.stats.paused:
            self._consumer.poll_batch(1, timeout=0)  # keeps group membership while paused
            if self._is_paused():
                time.sleep(self._poll_s)
                return 0
            self._consumer.resume()
            self.stats.paused = False
        messages = self._consumer.poll_batch(self._batch, timeout=self._poll_s)
        if not messages:
            return 0
        batch = self._admitter.admit([to_record(m) for m in messages])
        items = [work_item(a) for a in batch.new_jobs]
        # a duplicate that is still queued may have been admitted just before a crash: the
        # Dispatcher looks it up unless it already holds it, so it is not left waiting
        recheck = [a.outcome.job_id for a in batch.admitted
                   if not a.outcome.created and a.outcome.status is JobStatus.QUEUED]  # fmt: skip
        paused = self._submit(items, recheck) if items or recheck else self._is_paused()
        self._consumer.store(messages)
        self._count(batch.new_jobs, len(messages), len(batch.admitted), len(batch.dead_letters))
        if paused:
            self._consumer.pause()
            self.stats.paused = True
        return len(messages)

    def _count(self, new: list[Admitted], messages: int, admitted: int, dead: int) -> None:
        self.stats.messages += messages
        self.stats.created += len(new)
        self.stats.duplicates += admitted - len(new)
        self.stats.dead_letters += dead
        for a in new:
            self.metrics.inc("ingest_jobs_admitted", a.pipeline)
        if dead:
            self.metrics.inc("ingest_dead_letters", "message", value=dead)


class KafkaIngress:
    """Ray actor: runs an :class:`IngressLoop` on its own thread until told to stop."""

    def __init__(
        self, settings: Settings, options: RuntimeOptions, dispatcher: Any, group_id: str
    ) -> None:
        kafka = KafkaClient.from_settings(settings)
        self._producer = kafka.producer()
        self._consumer = kafka.consumer(group_id, [settings.topic_requests])
        self._ledger = open_ledger(settings)
        admitter = Admitter(
            self._ledger, KafkaDeadLetterSink(self._producer, settings.topic_deadletter)
        )
        self._loop = IngressLoop(
            self._consumer, admitter,
            submit=lambda items, recheck: bool(ray.get(dispatcher.submit.remote(items, recheck))),
            is_paused=lambda: bool(ray.get(dispatcher.paused.remote())),
            batch=options.ingress_batch, poll_s=options.ingress_poll_s,
            metrics=RuntimeMetrics(mirror_to_ray=True),
        )  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-ingress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lag_at = 0.0
        while not self._stop.is_set():
            try:
                self._loop.step()
                if time.monotonic() - lag_at > 5.0:  # on this thread: the consumer is not shared
                    lag_at = time.monotonic()
                    self._loop.stats.lag = {
                        f"{t}:{p}": n for (t, p), n in self._consumer.lag(timeout=1.0).items()
                    }
            except Exception as exc:  # keep consuming; the error shows in health
                self._loop.stats.last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(1.0)

    def stats(self) -> IngressStats:
        """Totals and the last error."""
        return self._loop.stats

    def lag(self) -> dict[str, int]:
        """Messages behind per partition (``topic:partition``), measured every few seconds."""
        return dict(self._loop.stats.lag)

    def metrics_snapshot(self) -> Snapshot:
        """Counters for the worker's ``/metrics``."""
        return self._loop.metrics.snapshot()

    def stop(self) -> IngressStats:
        """Stop polling, commit the stored offsets, leave the group, flush the producer."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._consumer.close()
        self._producer.close()
        self._ledger.close()
        return self._loop.stats


RemoteKafkaIngress = ray.remote(KafkaIngress)
