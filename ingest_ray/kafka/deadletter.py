"""The Kafka dead-letter sink: dead letters go to ``ingest.deadletter.v1`` with their headers."""

from __future__ import annotations

from ingest_ray.constants import TOPIC_DEADLETTER
from ingest_ray.events import DeadLetter
from ingest_ray.kafka.producer import Producer


class KafkaDeadLetterSink:
    """Publishes dead letters through an idempotent producer; ``flush`` waits for the broker."""

    def __init__(self, producer: Producer, topic: str = TOPIC_DEADLETTER) -> None:
        self._producer = producer
        self.topic = topic

    def publish(self, letter: DeadLetter, *, key: bytes | None, headers: dict[str, str]) -> None:
        """Queue one dead letter, keyed like the message it replaces."""
        self._producer.send(
            self.topic,
            letter,
            key=key.decode("utf-8", errors="replace") if key is not None else None,
            headers=headers,
        )

    def flush(self) -> None:
        """Block until the broker acknowledged every dead letter (raises otherwise)."""
        self._producer.flush()
