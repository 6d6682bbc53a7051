"""Read a bounded window of a topic through offsets: the last N messages of each partition, or
those since a time (``offsets_for_times``), never the whole topic from the beginning.

No consumer group is joined and nothing is committed: the reader assigns partitions at the
offsets it computed and stops at the high watermarks it saw when it started.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from ingest_ray.errors import ServiceUnavailableError
from ingest_ray.kafka.admin import LIBRDKAFKA_LOG


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One consumed message, detached from the client."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str]
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition to read."""

    partition: int
    start: int
    end: int


def plan(
    watermarks: Mapping[int, tuple[int, int]],
    *,
    last: int | None,
    since_offsets: Mapping[int, int] | None = None,
) -> list[PartitionRange]:
    """Which offsets to read per partition: the last ``last`` (all that is retained when
    ``None``), and from ``since_offsets`` on when given (``-1``: nothing that recent). When
    both are given the window is the later of the two starts."""
    out = []
    for partition, (low, high) in sorted(watermarks.items()):
        start = low if last is None else max(low, high - last)
        if since_offsets is not None:
            since = since_offsets.get(partition, -1)
            start = high if since < 0 else max(start, since)
        if start < high:
            out.append(PartitionRange(partition, start, high))
    return out


def _consumer(bootstrap_servers: str) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": f"ingest-ray-window-{uuid.uuid4()}",
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest", "enable.partition.eof": True, "logger": LIBRDKAFKA_LOG,
    })  # fmt: skip


def read_window(
    bootstrap_servers: str,
    topic: str,
    *,
    last: int | None = 100,
    since: datetime | None = None,
    timeout: float = 10.0,
) -> list[RawMessage]:
    """Messages of ``topic`` in the window (see :func:`plan`), oldest first by timestamp."""
    consumer = _consumer(bootstrap_servers)
    try:
        ranges = plan(
            _watermarks(consumer, topic, timeout),
            last=last,
            since_offsets=_since(consumer, topic, since, timeout) if since else None,
        )
        return sorted(_read(consumer, topic, ranges, timeout), key=lambda m: m.timestamp_ms)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"reading {topic}: {exc}") from exc
    finally:
        consumer.close()


def read_at(
    bootstrap_servers: str, topic: str, partition: int, offset: int, *, timeout: float = 10.0
) -> RawMessage | None:
    """The one message at ``partition``/``offset``, or ``None`` when there is none."""
    consumer = _consumer(bootstrap_servers)
    try:
        low, high = _watermarks(consumer, topic, timeout).get(partition, (0, 0))
        if not low <= offset < high:
            return None
        found = _read(consumer, topic, [PartitionRange(partition, offset, offset + 1)], timeout)
        return found[0] if found else None
    except KafkaException as exc:
        raise ServiceUnavailableError(f"reading {topic}: {exc}") from exc
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, topic: str, timeout: float) -> dict[int, tuple[int, int]]:
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None:
        return {}
    out = {}
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
        out[int(p)] = (int(low), int(high))
    return out


def _since(consumer: Consumer, topic: str, since: datetime, timeout: float) -> dict[int, int]:
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None:
        return {}
    # before 1970 means "all that is retained" (Kafka reads negative times as special values)
    ms = max(0, int(since.timestamp() * 1000))
    wanted = [TopicPartition(topic, p, ms) for p in meta.partitions]
    found = consumer.offsets_for_times(wanted, timeout=timeout)
    return {int(tp.partition): int(tp.offset) for tp in found}


def _read(
    consumer: Consumer, topic: str, ranges: list[PartitionRange], timeout: float
) -> list[RawMessage]:
    if not ranges:
        return []
    consumer.assign([TopicPartition(topic, r.partition, r.start) for r in ranges])
    ends = {r.partition: r.end for r in ranges}
    out: list[RawMessage] = []
    deadline = time.monotonic() + timeout
    while ends and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # a gap (e.g. a control record)
                    ends.pop(partition, None)
                continue
            end = ends.get(partition)
            if end is None or offset >= end:
                continue
            out.append(_detach(msg))
            if offset + 1 >= end:
                del ends[partition]
    return out


def _detach(msg: Message) -> RawMessage:
    headers: dict[str, str] = {}
    raw: Any = msg.headers() or []
    for name, value in raw:
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
        headers[str(name)] = text or ""
    timestamp: Any = msg.timestamp()
    return RawMessage(
        topic=str(msg.topic()), partition=int(msg.partition() or 0), offset=int(msg.offset() or 0),
        key=msg.key(), value=msg.value(), headers=headers, timestamp_ms=int(timestamp[1]),
    )  # fmt: skip
