"""Kafka health check that always answers within its timeout."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException

from ingest_ray.constants import ALL_TOPICS
from ingest_ray.kafka.admin import admin_client


@dataclass(frozen=True, slots=True)
class KafkaHealth:
    """What a metadata request saw."""

    ok: bool
    brokers: int
    topics_present: tuple[str, ...]
    topics_missing: tuple[str, ...]
    elapsed_s: float
    error: str | None = None


def check_kafka(
    bootstrap_servers: str, *, timeout: float = 5.0, topics: Iterable[str] = ALL_TOPICS
) -> KafkaHealth:
    """Ask the cluster for metadata; healthy means at least one broker and every topic present."""
    wanted = tuple(topics)
    started = time.monotonic()
    try:
        meta = admin_client(bootstrap_servers, probe=True).list_topics(timeout=timeout)
    except KafkaException as exc:
        return KafkaHealth(
            ok=False,
            brokers=0,
            topics_present=(),
            topics_missing=wanted,
            elapsed_s=time.monotonic() - started,
            error=str(exc.args[0]),
        )
    present = tuple(t for t in wanted if t in meta.topics)
    missing = tuple(t for t in wanted if t not in meta.topics)
    brokers = len(meta.brokers)
    return KafkaHealth(
        ok=brokers > 0 and not missing,
        brokers=brokers,
        topics_present=present,
        topics_missing=missing,
        elapsed_s=time.monotonic() - started,
        error=None if not missing else "missing topics: " + ", ".join(missing),
    )
