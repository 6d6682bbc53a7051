"""``KafkaClient``: one picklable handle that builds producers, consumers, admin and health calls.

It holds configuration only; connections are made when a producer or consumer is asked for, so a
client can be passed into Ray actors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest_ray.config import Settings
from ingest_ray.constants import ALL_TOPICS
from ingest_ray.kafka.admin import TopicOutcome, ensure_topics
from ingest_ray.kafka.consumer import Consumer
from ingest_ray.kafka.health import KafkaHealth, check_kafka
from ingest_ray.kafka.producer import Producer


@dataclass(frozen=True, slots=True)
class KafkaClient:
    """Factory for the project's Kafka objects, bound to one cluster."""

    bootstrap_servers: str
    partitions: int = 6
    replication: int = 1
    health_timeout_s: float = 5.0
    topics: tuple[str, ...] = ALL_TOPICS
    session_timeout_ms: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaClient:
        """Bind to the cluster named in the settings."""
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
            health_timeout_s=settings.health_timeout_s,
            topics=settings.topics,
            session_timeout_ms=settings.kafka_session_timeout_ms,
        )

    def producer(self, **overrides: Any) -> Producer:
        """A new idempotent producer."""
        return Producer(self.bootstrap_servers, **overrides)

    def consumer(self, group_id: str, topics: Sequence[str], **overrides: Any) -> Consumer:
        """A new at-least-once consumer in ``group_id``; a consumer that dies is out of the group
        after ``session_timeout_ms``, so the others take its partitions over."""
        overrides = {"session.timeout.ms": self.session_timeout_ms, **overrides}
        return Consumer(self.bootstrap_servers, group_id, topics, **overrides)

    def ensure_topics(self, topics: Iterable[str] | None = None) -> dict[str, TopicOutcome]:
        """Create the topics that are missing (the project's four by default)."""
        return ensure_topics(
            self.bootstrap_servers,
            self.topics if topics is None else topics,
            partitions=self.partitions,
            replication=self.replication,
        )

    def health(self, topics: Iterable[str] | None = None) -> KafkaHealth:
        """Broker count and topic presence, answered within the health timeout."""
        return check_kafka(
            self.bootstrap_servers,
            timeout=self.health_timeout_s,
            topics=self.topics if topics is None else topics,
        )
