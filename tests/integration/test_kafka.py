"""The Kafka client against the real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest_ray.errors import KafkaDeliveryError
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind, decode
from ingest_ray.kafka import Consumer, KafkaClient, Producer, check_kafka, ensure_topics
from ingest_ray.kafka.admin import admin_client, delete_topics

NewTopics = Callable[..., list[str]]


def _requests(n: int) -> list[IngestRequest]:
    return [
        IngestRequest(source=DocumentSource(kind=SourceKind.DOI, value=f"10.1/{i}"))
        for i in range(n)
    ]


def _drain(consumer: Consumer, want: int, rounds: int = 60) -> list:  # type: ignore[type-arg]
    got: list = []  # type: ignore[type-arg]
    for _ in range(rounds):
        got += consumer.poll_batch(100, timeout=0.5)
        if len(got) >= want:
            break
    return got


def test_produce_consume_round_trip_keeps_keys_and_envelopes(
    kafka_bootstrap: str, new_topics: NewTopics
) -> None:
    (topic,) = new_topics("roundtrip")
    sent = _requests(20)
    with Producer(kafka_bootstrap) as producer:
        futures = [producer.send(topic, r, key=r.doc_key) for r in sent]
        producer.flush()
    assert all(f.result(0).error() is None for f in futures)
    with Consumer(kafka_bootstrap, f"g-{uuid.uuid4().hex}", [topic]) as consumer:
        got = _drain(consumer, 20)
        consumer.store(got)
    assert len(got) == 20
    by_key = {m.key().decode(): decode(m.value()) for m in got}
    assert by_key == {r.doc_key: r for r in sent}
    # one document stays on one partition: same key, same partition
    partitions = {m.key(): m.partition() for m in got}
    with Producer(kafka_bootstrap) as producer:
        again = producer.send(topic, sent[0], key=sent[0].doc_key)
        producer.flush()
    assert again.result(0).partition() == partitions[sent[0].doc_key.encode()]


def test_consumer_that_dies_before_storing_gets_its_messages_redelivered(
    kafka_bootstrap: str, new_topics: NewTopics
) -> None:
    (topic,) = new_topics("redelivery", partitions=1)
    group = f"g-{uuid.uuid4().hex}"
    with Producer(kafka_bootstrap) as producer:
        for i, r in enumerate(_requests(10)):
            producer.send(topic, r, key=str(i))
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("consumer_child.py")),
         kafka_bootstrap, group, topic, "10", "4"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "read 10 stored 4"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout:
            child.stdout.close()
    with Consumer(kafka_bootstrap, group, [topic], **{"session.timeout.ms": 6000}) as consumer:
        got = _drain(consumer, 6, rounds=120)
        consumer.store(got)
    assert sorted(m.offset() for m in got) == [4, 5, 6, 7, 8, 9]


def test_topic_creation_is_idempotent(kafka_bootstrap: str) -> None:
    names = [f"test.{uuid.uuid4().hex[:8]}.{n}" for n in ("a", "b")]
    assert ensure_topics(kafka_bootstrap, names, partitions=6) == dict.fromkeys(names, "created")
    assert ensure_topics(kafka_bootstrap, names, partitions=6) == dict.fromkeys(names, "exists")
    meta = admin_client(kafka_bootstrap).list_topics(timeout=10)
    assert [len(meta.topics[n].partitions) for n in names] == [6, 6]


def test_topic_deletion_is_idempotent_and_leaves_other_topics(
    kafka_bootstrap: str, new_topics: NewTopics
) -> None:
    doomed, kept = new_topics("doomed", "kept", partitions=1)
    assert delete_topics(kafka_bootstrap, [doomed, f"test.absent.{uuid.uuid4().hex}"]) == 1
    assert delete_topics(kafka_bootstrap, [doomed]) == 0
    left = admin_client(kafka_bootstrap).list_topics(timeout=10).topics
    assert doomed not in left and kept in left


def test_health_reports_brokers_and_missing_topics(
    kafka_bootstrap: str, new_topics: NewTopics
) -> None:
    (topic,) = new_topics("health")
    ok = check_kafka(kafka_bootstrap, timeout=5, topics=[topic])
    assert ok.ok
    assert ok.brokers == 1
    assert ok.topics_present == (topic,)
    missing = check_kafka(kafka_bootstrap, timeout=5, topics=[topic, "no.such.topic"])
    assert not missing.ok
    assert missing.topics_missing == ("no.such.topic",)


def test_health_of_an_absent_broker_answers_unhealthy_within_timeout() -> None:
    health = check_kafka("127.0.0.1:1", timeout=2.0)
    assert not health.ok
    assert health.brokers == 0
    assert health.error
    assert health.elapsed_s < 2.0 + 1.0


def test_undeliverable_message_surfaces_as_delivery_error(kafka_bootstrap: str) -> None:
    producer = Producer(kafka_bootstrap, **{"message.timeout.ms": 1500})
    future = producer.send(f"test.absent.{uuid.uuid4().hex}", _requests(1)[0], key="k")
    with pytest.raises(KafkaDeliveryError, match=r"test\.absent"):
        producer.flush(timeout=10)
    assert isinstance(future.exception(0), KafkaDeliveryError)


def test_kafka_client_is_picklable_and_builds_working_clients(kafka_bootstrap: str) -> None:
    import pickle

    client = pickle.loads(pickle.dumps(KafkaClient(kafka_bootstrap, partitions=2)))
    assert client.health(topics=()).brokers == 1
    topic = f"test.{uuid.uuid4().hex[:8]}.client"
    assert client.ensure_topics([topic]) == {topic: "created"}
    with client.producer() as producer:
        producer.send(topic, _requests(1)[0], key="k")
    with client.consumer(f"g-{uuid.uuid4().hex}", [topic]) as consumer:
        assert len(_drain(consumer, 1)) == 1
