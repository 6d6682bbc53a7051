"""Topic administration: idempotent creation (and deletion) of topics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from ingest_ray.constants import ALL_TOPICS
from ingest_ray.errors import ServiceUnavailableError

TopicOutcome = Literal["created", "exists"]


#: librdkafka's own log lines go through Python logging (never straight to stderr).
LIBRDKAFKA_LOG = logging.getLogger("ingest_ray.kafka.librdkafka")
#: A probe's connection failures are its result, not news: keep them out of the logs.
PROBE_LOG = logging.getLogger("ingest_ray.kafka.probe")
PROBE_LOG.setLevel(logging.CRITICAL)


def admin_client(bootstrap_servers: str, *, probe: bool = False) -> AdminClient:
    """An admin client that gives up quickly on an absent broker."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "socket.timeout.ms": 5000,
        "logger": PROBE_LOG if probe else LIBRDKAFKA_LOG,
    }
    return AdminClient(config)


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str] = ALL_TOPICS,
    *,
    partitions: int = 6,
    replication: int = 1,
    timeout: float = 30.0,
) -> dict[str, TopicOutcome]:
    """Create each topic unless it exists; return what happened to each. Safe to run twice."""
    admin = admin_client(bootstrap_servers)
    wanted = list(topics)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"Kafka at {bootstrap_servers}: {exc}") from exc
    outcome: dict[str, TopicOutcome] = {t: "exists" for t in wanted if t in existing}
    missing = [
        NewTopic(t, num_partitions=partitions, replication_factor=replication)
        for t in wanted
        if t not in existing
    ]
    if not missing:
        return outcome
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
    _await_metadata(admin, [t.topic for t in missing], timeout)
    return outcome


def delete_topics(bootstrap_servers: str, topics: Iterable[str], *, timeout: float = 30.0) -> int:
    """Delete the topics that exist among ``topics``; return how many went. Safe to run twice:
    a topic already gone counts as nothing, any other refusal raises."""
    wanted = list(topics)
    if not wanted:
        return 0
    admin = admin_client(bootstrap_servers)
    deleted = 0
    for future in admin.delete_topics(wanted, operation_timeout=timeout).values():
        try:
            future.result(timeout)
            deleted += 1
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
    return deleted


def _await_metadata(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """Return once every topic shows up in the cluster metadata, so callers can use them at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        known = admin.list_topics(timeout=timeout).topics
        if all(t in known and not known[t].error for t in topics):
            return
        time.sleep(0.1)
    raise ServiceUnavailableError(f"topics not visible after {timeout}s: {', '.join(topics)}")
