"""Admission end to end: Kafka in, the ledger and (through the outbox) the dead-letter topic out."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from confluent_kafka import Message

from ingest_ray import constants as c
from ingest_ray.admission import new_job
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka import Consumer, Producer
from ingest_ray.ledger import JobFilter
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.runtime.ingress import IngressStats, run_admission
from ingest_ray.states import JobStatus
from tests.conftest import Services


def _settings(services: Services, prefix: str, topics: list[str], group: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=prefix, consumer_group=group, topic_requests=topics[0],
        topic_deadletter=topics[1], kafka_max_message_bytes=1_000_000,
    )  # fmt: skip


def _admit(settings: Settings) -> IngressStats:
    return run_admission(
        settings, pipelines=["auto", "two_phase"], stop=threading.Event(), idle_timeout=3.0
    )


def _read_all(kafka_bootstrap: str, topic: str, want: int) -> list[Message]:
    got: list[Message] = []
    with Consumer(kafka_bootstrap, f"g-{uuid.uuid4().hex}", [topic]) as consumer:
        for _ in range(60):
            got += consumer.poll_batch(100, timeout=0.5)
            if len(got) >= want:
                break
    return got


def test_admission_admits_dedups_and_dead_letters_with_the_original_bytes(
    services: Services, redis_ledger: RedisLedger, new_topics: Callable[..., list[str]]
) -> None:
    topics = new_topics("requests", "dlq")
    requests = [
        IngestRequest(
            tenant_id="acme", source=DocumentSource(kind=SourceKind.DOI, value=f"10.9/{i}")
        )
        for i in range(12)
    ]
    big = b"\xff" * 900_000  # a 900 KB binary message: dead-lettered whole, nothing else harmed
    with Producer(services.kafka_bootstrap) as producer:
        for r in [*requests, requests[0]]:
            producer.send(topics[0], r, key=r.doc_key)
        producer.send_raw(topics[0], b"\x00not an envelope", key="bad-1")
        producer.send_raw(topics[0], b'{"schema_version": 9}', key="bad-2")
        producer.send_raw(topics[0], big, key="bad-3")
    settings = _settings(services, redis_ledger.prefix, topics, f"g-{uuid.uuid4().hex}")
    totals = _admit(settings)
    assert (totals.messages, totals.created, totals.duplicates, totals.dead_letters) == (
        16, 12, 1, 3,
    )  # fmt: skip
    jobs = redis_ledger.list_jobs(JobFilter(tenant_id="acme"), limit=100).items
    assert sorted(j.doc_key for j in jobs) == sorted(r.doc_key for r in requests)
    assert all(j.status is JobStatus.QUEUED and j.pipeline == "two_phase" for j in jobs)

    letters = _read_all(services.kafka_bootstrap, topics[1], 3)
    by_key = {m.key(): m for m in letters}
    assert sorted(by_key) == [b"bad-1", b"bad-2", b"bad-3"]
    assert by_key[b"bad-3"].value() == big  # unchanged, not a replacement-character copy
    assert by_key[b"bad-1"].value() == b"\x00not an envelope"
    for msg in letters:
        headers = {k: v.decode() for k, v in msg.headers() or []}
        assert set(headers) == set(c.DLQ_HEADERS)
        assert headers[c.DLQ_HEADER_TOPIC] == topics[0]
        assert headers[c.DLQ_HEADER_ERROR_TYPE] == "MessageDecodeError"
        assert int(headers[c.DLQ_HEADER_OFFSET]) >= 0
        assert headers[c.DLQ_HEADER_REASON]
    assert redis_ledger.outbox_depth() == 0  # everything was relayed

    # offsets were stored: the same group re-running finds nothing new
    assert _admit(settings).messages == 0


def test_redelivered_batch_creates_no_second_job(
    services: Services, redis_ledger: RedisLedger, new_topics: Callable[..., list[str]]
) -> None:
    topics = new_topics("requests", "dlq")
    request = IngestRequest(source=DocumentSource(kind=SourceKind.DOI, value="10.9/once"))
    with Producer(services.kafka_bootstrap) as producer:
        producer.send(topics[0], request, key=request.doc_key)
    first = _admit(_settings(services, redis_ledger.prefix, topics, f"g-{uuid.uuid4().hex}"))
    # a different group reads the same message again, as after a crash before commit
    second = _admit(_settings(services, redis_ledger.prefix, topics, f"g-{uuid.uuid4().hex}"))
    assert (first.created, second.created, second.duplicates) == (1, 0, 1)
    assert redis_ledger.counts()[JobStatus.QUEUED] == 1


def test_a_request_whose_record_is_damaged_is_dead_lettered_and_the_partition_goes_on(
    services: Services, redis_ledger: RedisLedger, new_topics: Callable[..., list[str]]
) -> None:
    # the job holding one document is a key Redis cannot read as a hash: before, every create
    # batch holding that request raised, and ingress read the same batch again for ever
    topics = new_topics("requests", "dlq")
    requests = [
        IngestRequest(source=DocumentSource(kind=SourceKind.DOI, value=f"10.9/d{i}"))
        for i in range(3)
    ]
    held = redis_ledger.create(new_job(requests[1]))
    key = redis_ledger.keys.job(held.job_id)
    redis_ledger._r.delete(key)
    redis_ledger._r.rpush(key, "not a hash")
    with Producer(services.kafka_bootstrap) as producer:
        for r in requests:
            producer.send(topics[0], r, key=r.doc_key)
    settings = _settings(services, redis_ledger.prefix, topics, f"g-{uuid.uuid4().hex}")
    totals = _admit(settings)
    assert (totals.messages, totals.created, totals.dead_letters) == (3, 2, 1)
    (letter,) = _read_all(services.kafka_bootstrap, topics[1], 1)
    headers = {k: v.decode() for k, v in letter.headers() or []}
    assert headers[c.DLQ_HEADER_ERROR_TYPE] == "DamagedRecordError"
    assert "WRONGTYPE" in headers[c.DLQ_HEADER_REASON]
    assert headers[c.DLQ_HEADER_DOC_KEY] == requests[1].doc_key
    assert letter.key() == requests[1].doc_key.encode()  # the original message, as it came
    assert _admit(settings).messages == 0  # its offset was stored with the rest
