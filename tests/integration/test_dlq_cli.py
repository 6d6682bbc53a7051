"""``ingest-ray dlq`` against real Kafka and Redis, with letters in the one dead-letter format
(``ingest_ray.deadletters``) produced on this test's own topics: a bounded window read through
offsets and deduplicated by event id, raw display of unreadable values, resend after an edit,
replay of mapping and job letters, and no second replay of the same letter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from ingest_ray import deadletters
from ingest_ray.config import Settings
from ingest_ray.control import ControlInbox
from ingest_ray.deadletters import LetterKind, Origin, Subject
from ingest_ray.events import DeadLetter, DocumentSource, IngestRequest, MappingRequest, encode
from ingest_ray.kafka import Producer
from ingest_ray.kafka.window import read_window
from ingest_ray.ledger.base import NewJob, OutboxMessage, TransitionRequest
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.states import JobStatus
from tests.conftest import Services


@dataclass
class Dlq:
    settings: Settings
    env: dict[str, str]
    tmp: Path

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ingest_ray", "dlq", *args],
                              env={**self.env, **env}, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip

    def publish(self, *letters: OutboxMessage) -> None:
        with Producer(self.settings.kafka_bootstrap_servers) as producer:
            for m in letters:
                producer.send_raw(m.topic, m.value, key=m.key, headers=dict(m.headers))

    def topic(self, name: str) -> list[bytes]:
        found = read_window(self.settings.kafka_bootstrap_servers, name, last=None)
        return [m.value or b"" for m in found]


@pytest.fixture
def dlq(
    services: Services, redis_prefix: str, new_topics: Callable[..., list[str]], tmp_path: Path
) -> Dlq:
    requests, mapping, dead = new_topics("requests", "mapping", "dlq", partitions=1)
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=redis_prefix, topic_requests=requests, topic_mapping=mapping,
        topic_deadletter=dead, runtime_name=f"dlq-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap,
        "REDIS_URL": services.redis_url, "INGEST_RAY_REDIS_PREFIX": redis_prefix,
        "INGEST_RAY_TOPIC_REQUESTS": requests, "INGEST_RAY_TOPIC_MAPPING": mapping,
        "INGEST_RAY_TOPIC_DEADLETTER": dead, "INGEST_RAY_RUNTIME_NAME": settings.runtime_name,
        "COLUMNS": "200",
    }  # fmt: skip
    return Dlq(settings, env, tmp_path)


def message_letter(d: Dlq, value: bytes, *, n: int = 0, kind: LetterKind = LetterKind.MESSAGE,
                   topic: str | None = None) -> OutboxMessage:  # fmt: skip
    origin = Origin(topic or d.settings.topic_requests, 0, 100 + n)
    return deadletters.message_letter(
        d.settings.topic_deadletter, kind=kind, value=value, key=f"doc-{n}".encode(),
        origin=origin, reason=f"bad message {n}", error_type="MessageDecodeError",
        subject=Subject(tenant_id="acme", doc_key=f"doi:10.1/{n}"),
    )  # fmt: skip


def test_dlq_list_reads_a_bounded_window_and_dedupes_by_event_id(dlq: Dlq) -> None:
    early = [message_letter(dlq, b"not json", n=n) for n in range(5)]
    dlq.publish(*early)
    time.sleep(1.5)
    since = datetime.now(UTC).isoformat()
    time.sleep(0.5)
    late = [message_letter(dlq, b"not json", n=n) for n in range(5, 10)]
    dlq.publish(*late, late[-1])  # the outbox may publish a letter twice

    listed = dlq.cli("list", "--last", "3", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    # the window is the last three messages: letters 8, 9 and 9 again, shown once
    assert [r["reason"] for r in rows] == ["bad message 8", "bad message 9"]
    assert [r["letter"] for r in rows] == ["0:8", "0:9"]

    everything = json.loads(dlq.cli("list", "--last", "50", "--json").stdout)
    assert len(everything) == 10
    assert {r["event_id"] for r in everything} == {m.event_id for m in early + late}

    recent = json.loads(dlq.cli("list", "--since", since, "--json").stdout)
    assert [r["reason"] for r in recent] == [f"bad message {n}" for n in range(5, 10)]
    table = dlq.cli("list", "--last", "2")
    assert "bad message 9" in table.stdout and "doi:10.1/9" in table.stdout
    assert f"{dlq.settings.topic_requests}[0]@109" in table.stdout  # where it came from
    assert "1 dead letter(s)" in table.stdout  # the last two messages are one letter


def test_dlq_show_raw_then_resend_after_an_edit_once(dlq: Dlq) -> None:
    unreadable = message_letter(dlq, b"\xff\xfe{broken", n=1)
    other = message_letter(dlq, b"{also broken", n=2)
    dlq.publish(unreadable, other)
    shown = dlq.cli("show", "0:0")
    assert shown.returncode == 0, shown.stderr
    assert "ff fe 7b 62 72 6f 6b 65" in shown.stdout  # not text: a hex dump
    assert unreadable.event_id in shown.stdout and "bad message 1" in shown.stdout

    refused = dlq.cli("replay", "0:0")
    assert refused.returncode == 1 and "not a valid envelope" in refused.stdout
    bad = dlq.tmp / "bad.json"
    bad.write_text('{"schema_version": 1, "event_type": "ingest.request"}')
    assert dlq.cli("resend", "0:0", "--from-file", str(bad)).returncode == 1
    assert dlq.topic(dlq.settings.topic_requests) == []  # nothing was sent

    fixed = IngestRequest(tenant_id="acme", source=DocumentSource(kind="doi", value="10.1/1"))
    good = dlq.tmp / "good.json"
    good.write_bytes(encode(fixed))
    sent = dlq.cli("resend", "0:0", "--from-file", str(good))
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "replayed" in sent.stdout
    again = dlq.cli("resend", unreadable.event_id, "--from-file", str(good))
    assert again.returncode == 0 and "already_replayed" in again.stdout

    # --edit: $EDITOR replaces the text of the value with the fixed envelope
    edited = dlq.cli("resend", "0:1", "--edit", EDITOR=f"cp {good}")
    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert dlq.topic(dlq.settings.topic_requests) == [encode(fixed), encode(fixed)]
    listed = json.loads(dlq.cli("list", "--json").stdout)
    assert [r["replayed"] for r in listed] == [True, True]


def test_dlq_replay_mapping_letter_resends_the_original_event_once(dlq: Dlq) -> None:
    event = MappingRequest(job_id="J1", tenant_id="acme", doc_key="doi:10.1/m")
    letter = message_letter(dlq, encode(event), n=3, kind=LetterKind.MAPPING,
                            topic=dlq.settings.topic_mapping)  # fmt: skip
    dlq.publish(letter)
    first = dlq.cli("replay", "--all")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"sent to {dlq.settings.topic_mapping}" in first.stdout
    second = dlq.cli("replay", letter.event_id)
    assert "already_replayed" in second.stdout
    assert dlq.topic(dlq.settings.topic_mapping) == [encode(event)]


def test_dlq_replay_job_letter_retries_the_job_once(dlq: Dlq) -> None:
    ledger = RedisLedger.from_settings(dlq.settings)
    try:
        job = NewJob(tenant_id="acme", doc_key="doi:10.1/j", pipeline="auto")
        ledger.create(job)
        ledger.transition(TransitionRequest(job.job_id, JobStatus.QUEUED, JobStatus.PROCESSING,
                                            stage="embed", attempts=1))  # fmt: skip
        ledger.transition(TransitionRequest(job.job_id, JobStatus.PROCESSING, JobStatus.FAILED))
        letter = deadletters.job_letter(dlq.settings.topic_deadletter, DeadLetter(
            reason="boom", error_type="PermanentError", job_id=job.job_id, tenant_id="acme",
            doc_key=job.doc_key, stage="embed", attempts=1))  # fmt: skip
        dlq.publish(letter)
        first = dlq.cli("replay", "--job", job.job_id)
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"job {job.job_id} queued again at stage embed" in first.stdout
        assert ledger.get(job.job_id).status is JobStatus.QUEUED
        second = dlq.cli("replay", "0:0")
        assert "already_replayed" in second.stdout
    finally:
        history = ledger.get(job.job_id).history
        ledger.close()
    assert [e.reason for e in history].count("retry") == 1
    client = redis.Redis.from_url(dlq.settings.redis_url, decode_responses=True)
    inbox = ControlInbox.for_settings(client, dlq.settings)
    assert [type(e.command).__name__ for e in inbox.read("test")] == ["RequeueJob"]
    client.close()
