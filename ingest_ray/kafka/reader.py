"""Read a whole topic from the beginning to its current end, without joining a group."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from ingest_ray.kafka.admin import LIBRDKAFKA_LOG


def read_topic(bootstrap_servers: str, topic: str, *, timeout: float = 10.0) -> list[Any]:
    """Every message of ``topic`` (all partitions) up to the high watermarks seen at the start."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": "ingest-ray-reader",
        "enable.auto.commit": False, "logger": LIBRDKAFKA_LOG,
    })  # fmt: skip
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        ends = {}
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > 0:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[Any] = []
        deadline = time.monotonic() + 10 * timeout
        while any(ends.values()) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1.0):
                if msg.error() is None:
                    out.append(msg)
                    if (msg.offset() or 0) + 1 >= ends.get(msg.partition() or 0, 0):
                        ends[msg.partition() or 0] = 0
        return sorted(out, key=lambda m: m.timestamp()[1])
    finally:
        consumer.close()
