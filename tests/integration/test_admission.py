"""The admission loop end to end: Kafka in, ledger and dead-letter topic out."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from confluent_kafka import Message

from ingest_ray.constants import (
    DLQ_HEADER_ERROR_TYPE,
    DLQ_HEADER_OFFSET,
    DLQ_HEADER_PARTITION,
    DLQ_HEADER_REASON,
    DLQ_HEADER_TOPIC,
)
from ingest_ray.events import DeadLetter, DocumentSource, IngestRequest, SourceKind, decode
from ingest_ray.kafka import Consumer, KafkaClient, Producer
from ingest_ray.ledger import JobFilter
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.states import JobStatus
from ingest_ray.workers.admit import run_admission


def _admit(kafka_bootstrap: str, ledger: RedisLedger, topics: list[str], group: str) -> object:
    return run_admission(
        KafkaClient(kafka_bootstrap),
        ledger,
        group_id=group,
        stop=threading.Event(),
        idle_timeout=2.0,
        topic=topics[0],
        dead_letter_topic=topics[1],
    )


def _read_all(kafka_bootstrap: str, topic: str, want: int) -> list[Message]:
    got: list[Message] = []
    with Consumer(kafka_bootstrap, f"g-{uuid.uuid4().hex}", [topic]) as consumer:
        for _ in range(60):
            got += consumer.poll_batch(100, timeout=0.5)
            if len(got) >= want:
                break
    return got


def test_admission_admits_dedups_and_dead_letters(
    kafka_bootstrap: str, redis_ledger: RedisLedger, new_topics: Callable[..., list[str]]
) -> None:
    topics = new_topics("requests", "dlq")
    requests = [
        IngestRequest(
            tenant_id="acme", source=DocumentSource(kind=SourceKind.DOI, value=f"10.9/{i}")
        )
        for i in range(12)
    ]
    with Producer(kafka_bootstrap) as producer:
        for r in [*requests, requests[0]]:
            producer.send(topics[0], r, key=r.doc_key)
        producer.send_raw(topics[0], b"\x00not an envelope", key="bad-1")
        producer.send_raw(topics[0], b'{"schema_version": 9}', key="bad-2")

    group = f"g-{uuid.uuid4().hex}"
    totals = _admit(kafka_bootstrap, redis_ledger, topics, group)
    assert (totals.messages, totals.created, totals.duplicates, totals.dead_letters) == (
        15,
        12,
        1,
        2,
    )  # type: ignore[attr-defined]
    jobs = redis_ledger.list_jobs(JobFilter(tenant_id="acme"), limit=100).items
    assert sorted(j.doc_key for j in jobs) == sorted(r.doc_key for r in requests)
    assert all(j.status is JobStatus.QUEUED and j.pipeline == "two_phase" for j in jobs)

    letters = _read_all(kafka_bootstrap, topics[1], 2)
    assert sorted(m.key() for m in letters) == [b"bad-1", b"bad-2"]
    for msg in letters:
        headers = {k: v.decode() for k, v in msg.headers() or []}
        assert headers[DLQ_HEADER_TOPIC] == topics[0]
        assert headers[DLQ_HEADER_ERROR_TYPE] == "MessageDecodeError"
        assert int(headers[DLQ_HEADER_PARTITION]) >= 0
        assert int(headers[DLQ_HEADER_OFFSET]) >= 0
        letter = decode(msg.value())
        assert isinstance(letter, DeadLetter)
        assert letter.reason == headers[DLQ_HEADER_REASON]

    # offsets were stored: the same group re-running finds nothing new
    again = _admit(kafka_bootstrap, redis_ledger, topics, group)
    assert again.messages == 0  # type: ignore[attr-defined]


def test_redelivered_batch_creates_no_second_job(
    kafka_bootstrap: str, redis_ledger: RedisLedger, new_topics: Callable[..., list[str]]
) -> None:
    topics = new_topics("requests", "dlq")
    request = IngestRequest(source=DocumentSource(kind=SourceKind.DOI, value="10.9/once"))
    with Producer(kafka_bootstrap) as producer:
        producer.send(topics[0], request, key=request.doc_key)
    first = _admit(kafka_bootstrap, redis_ledger, topics, f"g-{uuid.uuid4().hex}")
    # a different group reads the same message again, as after a crash before commit
    second = _admit(kafka_bootstrap, redis_ledger, topics, f"g-{uuid.uuid4().hex}")
    assert (first.created, second.created, second.duplicates) == (1, 0, 1)  # type: ignore[attr-defined]
    assert redis_ledger.counts()[JobStatus.QUEUED] == 1
