"""At-least-once Kafka consumer: offsets are stored only after the caller finished a message.

``enable.auto.offset.store`` is off, so librdkafka never marks a message done on its own;
``store`` marks processed messages and the periodic auto-commit (or ``commit``) writes only what
was stored. A consumer that dies before ``store`` gets its messages delivered again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from confluent_kafka import Consumer as _Consumer
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from ingest_ray.errors import ServiceUnavailableError
from ingest_ray.kafka.admin import LIBRDKAFKA_LOG


class Consumer:
    """Typed wrapper over confluent-kafka's consumer with manual offset storage."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        **overrides: Any,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "client.id": f"ingest-ray-{group_id}",
        }
        config.setdefault("logger", LIBRDKAFKA_LOG)
        config.update(overrides)
        self._consumer = _Consumer(config)
        self._consumer.subscribe(list(topics))
        self.topics = tuple(topics)
        self._closed = False

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages, as soon as there is one (waiting at most
        ``timeout``), with whatever else is already fetched; partition EOFs are dropped, real
        errors raise. (``consume`` alone would wait the whole timeout for a full batch.)"""
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        rest = (
            self._consumer.consume(num_messages=max_messages - 1, timeout=0)
            if max_messages > 1
            else []
        )
        messages = [first, *rest]
        good: list[Message] = []
        for msg in messages:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.fatal():
                raise ServiceUnavailableError(f"fatal consumer error: {err.str()}")
            # partition EOFs and transient errors (broker away, rebalance) need nothing from us:
            # librdkafka reconnects and retries by itself
        return good

    def assigned(self) -> bool:
        """Whether the group gave this consumer any partitions yet."""
        return bool(self._consumer.assignment())

    def store(self, messages: Sequence[Message]) -> None:
        """Mark messages processed; their offsets are committed on the next commit."""
        if messages:
            self._consumer.store_offsets(offsets=_next_offsets(messages))

    def seek_back(self, messages: Sequence[Message]) -> int:
        """Rewind each partition to the first of ``messages`` so they are delivered again (the
        batch could not be handled); answers how many partitions were rewound. A partition that
        was revoked meanwhile is skipped: its new owner starts from the committed offset."""
        lowest: dict[tuple[str, int], int] = {}
        for msg in messages:
            key = (cast(str, msg.topic()), cast(int, msg.partition()))
            lowest[key] = min(lowest.get(key, cast(int, msg.offset())), cast(int, msg.offset()))
        rewound = 0
        for (topic, partition), offset in lowest.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
                rewound += 1
            except KafkaException:
                continue
        return rewound

    def commit(self) -> None:
        """Synchronously commit every stored offset."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise

    def pause(self) -> None:
        """Stop fetching (backpressure) without leaving the group."""
        self._consumer.pause(self._consumer.assignment())

    def resume(self) -> None:
        """Fetch again after :meth:`pause`."""
        self._consumer.resume(self._consumer.assignment())

    def lag(self, timeout: float = 5.0) -> dict[tuple[str, int], int]:
        """Messages behind the high watermark per assigned partition. Before the consumer has
        a position on a partition, the group's committed offset counts (and a partition with
        neither is left out rather than counted from offset 0)."""
        lag: dict[tuple[str, int], int] = {}
        assignment = self._consumer.assignment()
        if not assignment:
            return lag
        positions = self._consumer.position(assignment)
        unknown = [tp for tp in positions if tp.offset < 0]
        committed = self._consumer.committed(unknown, timeout=timeout) if unknown else []
        known = {(tp.topic, tp.partition): tp.offset for tp in positions}
        known.update({(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0})
        for tp in positions:
            pos = known[(tp.topic, tp.partition)]
            if pos < 0:
                continue
            _, high = self._consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
            lag[(tp.topic, tp.partition)] = max(high - pos, 0)
        return lag

    def close(self) -> None:
        """Commit what was stored and leave the group; safe to call twice."""
        if not self._closed:
            self._closed = True
            try:
                self.commit()
            finally:
                self._consumer.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offset to store per partition: one past the highest processed message."""
    highest: dict[tuple[str, int], int] = {}
    for msg in messages:
        key = (cast(str, msg.topic()), cast(int, msg.partition()))
        highest[key] = max(highest.get(key, -1), cast(int, msg.offset()))
    return [TopicPartition(t, p, off + 1) for (t, p), off in highest.items()]
