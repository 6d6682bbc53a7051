"""The admission loop: consume ``ingest.requests.v1``, admit jobs, store offsets after.

Offsets are stored only once the ledger holds the batch's jobs and the dead-letter topic holds
its unreadable messages, so a crash anywhere in between redelivers rather than loses; the
ledger's idempotent create turns the redelivery into a no-op.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Message

from ingest_ray.admission import AdmissionBatch, Admitter, RawRecord
from ingest_ray.constants import TOPIC_DEADLETTER, TOPIC_REQUESTS
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.kafka.deadletter import KafkaDeadLetterSink
from ingest_ray.ledger.base import Ledger


@dataclass(slots=True)
class AdmissionTotals:
    """Running totals of an admission loop."""

    messages: int = 0
    created: int = 0
    duplicates: int = 0
    dead_letters: int = 0


def to_record(msg: Message) -> RawRecord:
    """Detach a confluent-kafka message from the client."""
    return RawRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
    )


def run_admission(
    kafka: KafkaClient,
    ledger: Ledger,
    *,
    group_id: str,
    stop: threading.Event,
    idle_timeout: float | None = None,
    batch_size: int = 500,
    topic: str = TOPIC_REQUESTS,
    dead_letter_topic: str = TOPIC_DEADLETTER,
    on_batch: Callable[[AdmissionBatch], None] = lambda _: None,
) -> AdmissionTotals:
    """Admit requests until ``stop`` is set, or until nothing arrived for ``idle_timeout``
    seconds once the consumer has partitions (joining a fresh group can take a while)."""
    totals = AdmissionTotals()
    producer = kafka.producer()
    admitter = Admitter(ledger, KafkaDeadLetterSink(producer, dead_letter_topic))
    consumer = kafka.consumer(group_id, [topic])
    last_message = time.monotonic()
    try:
        while not stop.is_set():
            messages = consumer.poll_batch(batch_size, timeout=0.5)
            if not messages:
                if not consumer.assigned():
                    last_message = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - last_message > idle_timeout:
                    break
                continue
            last_message = time.monotonic()
            batch = admitter.admit([to_record(m) for m in messages])
            consumer.store(messages)
            totals.messages += len(messages)
            totals.created += len(batch.new_jobs)
            totals.duplicates += len(batch.admitted) - len(batch.new_jobs)
            totals.dead_letters += len(batch.dead_letters)
            on_batch(batch)
    finally:
        consumer.close()
        producer.close()
    return totals
