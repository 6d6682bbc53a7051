"""Kafka ingress: consumer-group members that admit requests and hand them to the Dispatcher.

:class:`IngressLoop` is the one intake path (the ``ingest-ray admit`` command runs it without a
Dispatcher): poll a batch, admit it, hand the new jobs over, and store the offsets only after
that. If admission or the hand-over fails (Redis away, the Dispatcher restarting), the batch is
read again from its own offsets after a backoff, so nothing is skipped and nothing is committed
over. :class:`KafkaIngress` is the Ray actor that runs the loop on a thread of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray
from confluent_kafka import Message

from ingest_ray.admission import Admitted, Admitter, RawRecord
from ingest_ray.config import Settings
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.metrics import RuntimeMetrics, Snapshot
from ingest_ray.outbox import OutboxRelay
from ingest_ray.runtime.actors import NamedActor, find
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.work import WorkItem
from ingest_ray.states import JobStatus

Handover = Callable[[list[WorkItem], list[str]], bool]


class BatchConsumer(Protocol):
    """The part of :class:`ingest_ray.kafka.Consumer` the loop uses."""

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Any]: ...
    def store(self, messages: Sequence[Any]) -> None: ...
    def seek_back(self, messages: Sequence[Any]) -> int: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


def to_record(msg: Message) -> RawRecord:
    """Detach a confluent-kafka message from the client."""
    return RawRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
    )


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
    """Running totals of one ingress; ``last_error`` is cleared by the next good batch."""

    messages: int = 0
    created: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    retried_batches: int = 0
    paused: bool = False
    last_error: str | None = None
    error_since: float | None = None
    lag: dict[str, int] = field(default_factory=dict)


class IngressLoop:
    """One consumer's admit-and-hand-over loop. ``handover`` is None for admission only."""

    def __init__(
        self,
        consumer: BatchConsumer,
        admitter: Admitter,
        handover: Handover | None,
        is_paused: Callable[[], bool] = lambda: False,
        *,
        batch: int = 500,
        poll_s: float = 0.2,
        backoff_max_s: float = 5.0,
        metrics: RuntimeMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._consumer, self._admitter = consumer, admitter
        self._handover, self._is_paused = handover, is_paused
        self._batch, self._poll_s = batch, poll_s
        self._backoff_max_s, self._backoff_s = backoff_max_s, 0.0
        self._sleep = sleep
        self.metrics = metrics or RuntimeMetrics()
        self.stats = IngressStats()

    def step(self) -> int:
        """One poll; answers the number of messages handled (0 when it had to read again)."""
        if self.stats.paused and self._still_paused():
            return 0
        messages = self._consumer.poll_batch(self._batch, timeout=self._poll_s)
        if not messages:
            return 0
        try:
            paused = self._admit(messages)
        except Exception as exc:  # nothing of this batch is acknowledged: read it again
            self._failed(messages, exc)
            return 0
        self._consumer.store(messages)
        self._backoff_s = 0.0
        self.stats.last_error = self.stats.error_since = None
        if paused:
            self._consumer.pause()
            self.stats.paused = True
        return len(messages)

    def _admit(self, messages: list[Any]) -> bool:
        batch = self._admitter.admit([to_record(m) for m in messages])
        paused = False
        if self._handover is not None:
            items = [work_item(a) for a in batch.new_jobs]
            # a duplicate that is still queued may have been admitted just before a crash: the
            # Dispatcher looks it up unless it already holds it, so it is not left waiting
            queued = [a for a in batch.admitted if a.outcome.status is JobStatus.QUEUED]
            recheck = [a.outcome.job_id for a in queued if not a.outcome.created]
            paused = self._handover(items, recheck) if items or recheck else self._is_paused()
        self._count(batch.new_jobs, len(messages), len(batch.admitted), len(batch.rejected))
        return paused

    def _failed(self, messages: list[Any], exc: BaseException) -> None:
        self._consumer.seek_back(messages)
        self.stats.retried_batches += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        self.stats.error_since = self.stats.error_since or time.time()
        self.metrics.inc("ingest_admission_retries")
        self._backoff_s = min(self._backoff_max_s, max(0.1, self._backoff_s * 2))
        self._sleep(self._backoff_s)

    def _still_paused(self) -> bool:
        self._consumer.poll_batch(1, timeout=0)  # keeps group membership while paused
        try:
            paused = self._is_paused()
        except Exception:  # the Dispatcher is restarting: stay paused until it answers
            paused = True
        if paused:
            self._sleep(self._poll_s)
            return True
        self._consumer.resume()
        self.stats.paused = False
        return False

    def _count(self, new: list[Admitted], messages: int, admitted: int, dead: int) -> None:
        self.stats.messages += messages
        self.stats.created += len(new)
        self.stats.duplicates += admitted - len(new)
        self.stats.dead_letters += dead
        for a in new:
            self.metrics.inc("ingest_jobs_admitted", a.pipeline)
        if dead:
            self.metrics.inc("ingest_dead_letters", "message", value=dead)


def admitter_for(ledger: Any, settings: Settings, pipelines: Sequence[str] | None) -> Admitter:
    """The Admitter of an ingress, with the settings' dead-letter topic and size limit."""
    return Admitter(
        ledger, dead_letter_topic=settings.topic_deadletter, pipelines=pipelines,
        max_message_bytes=settings.kafka_max_message_bytes,
    )  # fmt: skip


class KafkaIngress:
    """Ray actor: runs an :class:`IngressLoop` on its own thread until told to stop."""

    def __init__(
        self,
        settings: Settings,
        options: RuntimeOptions,
        group_id: str,
        pipelines: Sequence[str],
    ) -> None:
        self._consumer = KafkaClient.from_settings(settings).consumer(
            group_id, [settings.topic_requests]
        )
        self._ledger = open_ledger(settings)
        name, namespace = options.dispatcher_name, options.namespace
        self._dispatcher = NamedActor(lambda: _required(find(name, namespace), name))
        self._loop = IngressLoop(
            self._consumer, admitter_for(self._ledger, settings, pipelines),
            handover=self._handover, is_paused=self._paused,
            batch=options.ingress_batch, poll_s=options.ingress_poll_s,
            metrics=RuntimeMetrics(mirror_to_ray=True),
        )  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-ingress", daemon=True)
        self._thread.start()

    def _handover(self, items: list[WorkItem], recheck: list[str]) -> bool:
        try:
            return bool(ray.get(self._dispatcher.get().submit.remote(items, recheck), timeout=60))
        except Exception:
            self._dispatcher.reset()  # found again by name next time (it may be restarting)
            raise

    def _paused(self) -> bool:
        try:
            return bool(ray.get(self._dispatcher.get().paused.remote(), timeout=30))
        except Exception:
            self._dispatcher.reset()
            raise

    def _run(self) -> None:
        lag_at = 0.0
        while not self._stop.is_set():
            try:
                self._loop.step()
                if time.monotonic() - lag_at > 5.0:  # on this thread: the consumer is not shared
                    lag_at = time.monotonic()
                    lag = self._consumer.lag(timeout=1.0)
                    self._loop.stats.lag = {f"{t}:{p}": n for (t, p), n in lag.items()}
                    self._loop.metrics.flush()
            except Exception as exc:  # Kafka itself away: keep trying; the error shows in health
                self._loop.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._loop.stats.error_since = self._loop.stats.error_since or time.time()
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
        """Stop polling, commit the stored offsets, leave the group."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._consumer.close()
        self._ledger.close()
        return self._loop.stats


def run_admission(
    settings: Settings,
    *,
    pipelines: Sequence[str] | None,
    stop: threading.Event,
    idle_timeout: float | None = None,
    on_batch: Callable[[IngressStats], None] = lambda _: None,
) -> IngressStats:
    """Admission only (``ingest-ray admit``): the ingress loop with no Dispatcher, and an outbox
    relay that publishes its dead letters. Runs until ``stop`` is set, or until nothing arrived
    for ``idle_timeout`` seconds once the consumer has partitions."""
    kafka = KafkaClient.from_settings(settings)
    consumer = kafka.consumer(settings.consumer_group, [settings.topic_requests])
    ledger = open_ledger(settings)
    producer = kafka.producer()
    relay = OutboxRelay(ledger, producer, consumer="admit", park=lambda e, why: None)
    loop = IngressLoop(consumer, admitter_for(ledger, settings, pipelines), handover=None)
    last = time.monotonic()
    try:
        while not stop.is_set():
            handled = loop.step()
            relay.step()
            if handled:
                last = time.monotonic()
                on_batch(loop.stats)
            elif not consumer.assigned():
                last = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last > idle_timeout:
                break
        while relay.step():  # the dead letters of the last batches
            pass
    finally:
        consumer.close()
        producer.close()
        ledger.close()
    return loop.stats


def _required(handle: Any | None, name: str) -> Any:
    if handle is None:
        raise LookupError(f"no actor {name} (restarting?)")
    return handle


RemoteKafkaIngress = ray.remote(KafkaIngress)
