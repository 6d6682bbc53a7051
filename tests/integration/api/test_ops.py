"""The operator routes on Ray Serve over real Kafka, Redis and LanceDB: ``/info``, the tenant's
dead letters and their replay (at most once), hybrid search linked to jobs, and the charts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np

from ingest_ray import deadletters
from ingest_ray.deadletters import LetterKind, Origin, Subject
from ingest_ray.events import DeadLetter
from ingest_ray.index.base import Chunk, DocumentChunks
from ingest_ray.index.search import build_sink, query_embedder
from ingest_ray.index.settings import IndexSettings
from ingest_ray.kafka import Producer
from ingest_ray.ledger.base import NewJob, OutboxMessage, TransitionRequest
from ingest_ray.stages.factories import section
from ingest_ray.states import JobStatus
from tests.integration.api.conftest import ApiEnv

Q, P = JobStatus.QUEUED, JobStatus.PROCESSING


def _publish(env: ApiEnv, *letters: OutboxMessage) -> None:
    with Producer(env.settings.kafka_bootstrap_servers) as producer:
        for m in letters:
            producer.send_raw(m.topic, m.value, key=m.key, headers=dict(m.headers))


def _failed_job(env: ApiEnv, tenant: str, priority: int = 5) -> str:
    job = NewJob(tenant_id=tenant, doc_key=f"doi:10.1/{uuid.uuid4().hex}", pipeline="auto",
                 priority=priority)  # fmt: skip
    env.ledger.create(job)
    env.ledger.transition(TransitionRequest(job.job_id, Q, P, stage="embed", attempts=1))
    env.ledger.transition(TransitionRequest(job.job_id, P, JobStatus.FAILED))
    return job.job_id


def test_ops_info_names_the_tenant_and_the_upload_cap(api_env: ApiEnv) -> None:
    with api_env.client("a_read") as c:
        body = c.get("/info").json()
    assert body["tenant_id"] == "a" and body["scopes"] == ["jobs:read"]
    assert body["max_upload_mb"] == 1 and body["max_upload_bytes"] == 1024 * 1024
    assert {"auto", "two_phase"} <= set(body["pipelines"])


def test_ops_dead_letters_are_tenant_scoped_and_replayed_once(api_env: ApiEnv) -> None:
    topic = api_env.settings.topic_deadletter
    mine = _failed_job(api_env, "a")
    letter = deadletters.job_letter(topic, DeadLetter(
        reason="embedding failed", error_type="PermanentError", job_id=mine, tenant_id="a",
        doc_key="doi:10.1/a", stage="embed", attempts=1))  # fmt: skip
    theirs = deadletters.job_letter(topic, DeadLetter(
        reason="theirs", error_type="E", job_id=_failed_job(api_env, "b"), tenant_id="b"))  # fmt: skip
    broken = deadletters.message_letter(
        topic, kind=LetterKind.MESSAGE, value=b"\x00not json", key=b"k",
        origin=Origin(api_env.settings.topic_requests, 0, 1), reason="not JSON",
        error_type="MessageDecodeError", subject=Subject(tenant_id="a"),
    )  # fmt: skip
    _publish(api_env, letter, theirs, broken, letter)
    with api_env.client() as c:
        listed = c.get("/deadletters", params={"last": 100}).json()["items"]
        ids = [x["event_id"] for x in listed]
        assert letter.event_id in ids and broken.event_id in ids and theirs.event_id not in ids
        assert len(ids) == len(set(ids))
        row = next(x for x in listed if x["event_id"] == letter.event_id)
        assert (row["kind"], row["job_id"], row["replayed"]) == ("job", mine, False)
        where = {"partition": row["partition"], "offset": row["offset"]}
        first = c.post("/deadletters/replay", json=where)
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "replayed"
        assert api_env.ledger.get(mine).status is JobStatus.QUEUED
        second = c.post("/deadletters/replay", json=where)
        assert second.json()["outcome"] == "already_replayed"
        bad = next(x for x in listed if x["event_id"] == broken.event_id)
        assert "not json" in bad["value_preview"]
        refused = c.post("/deadletters/replay",
                         json={"partition": bad["partition"], "offset": bad["offset"]})  # fmt: skip
        assert refused.status_code == 409 and "not a valid envelope" in refused.text
        again = c.get("/deadletters", params={"last": 100, "kind": "job"}).json()["items"]
        assert [x["replayed"] for x in again if x["event_id"] == letter.event_id] == [True]
    with api_env.client("b") as c:
        hidden = c.post("/deadletters/replay", json=where)
        assert hidden.status_code == 404  # another tenant's letter is not there for b


def test_ops_search_finds_indexed_chunks_and_links_their_job(api_env: ApiEnv) -> None:
    job = NewJob(tenant_id="a", doc_key=f"doi:10.5555/{uuid.uuid4().hex[:8]}", pipeline="auto")
    api_env.ledger.create(job)
    text = "Reciprocal rank fusion merges the vector ranking with the full-text ranking."
    embedder = query_embedder()
    sink = build_sink(section(api_env.settings, "index", IndexSettings))
    try:
        sink.upsert([DocumentChunks(
            tenant_id="a", doc_key=job.doc_key, chunks=(Chunk("c0000", text, 2, 2, ("3 Fusion",)),),
            vectors=np.asarray(embedder.embed([text]), dtype=np.float32), title="Fusion Notes",
            job_id=job.job_id)])  # fmt: skip
    finally:
        sink.close()
    with api_env.client() as c:
        found = c.get("/search", params={"q": "rank fusion of vector and text", "k": 5}).json()
    (hit, *_) = found["hits"]
    assert (hit["job_id"], hit["title"], hit["page_start"]) == (job.job_id, "Fusion Notes", 2)
    assert hit["section_path"] == ["3 Fusion"] and "fusion" in hit["snippet"].lower()
    with api_env.client("b") as c:
        assert c.get("/search", params={"q": "rank fusion"}).json()["hits"] == []


def test_ops_charts_count_completions_per_minute_and_queue_by_priority(api_env: ApiEnv) -> None:
    tenant_key = "a_read"
    before = _charts(api_env, tenant_key)
    for priority in (9, 9, 2):
        api_env.ledger.create(NewJob(tenant_id="a", doc_key=f"text:{uuid.uuid4().hex}",
                                     pipeline="auto", priority=priority))  # fmt: skip
    done = NewJob(tenant_id="a", doc_key=f"text:{uuid.uuid4().hex}", pipeline="auto")
    api_env.ledger.create(done)
    api_env.ledger.transition(TransitionRequest(done.job_id, Q, P, stage="index", attempts=1))
    api_env.ledger.transition(TransitionRequest(done.job_id, P, JobStatus.COMPLETED))
    after = _charts(api_env, tenant_key)
    assert len(after["completed_per_minute"]) == 30
    assert sum(m["count"] for m in after["completed_per_minute"]) == sum(
        m["count"] for m in before["completed_per_minute"]) + 1  # fmt: skip
    assert datetime.fromisoformat(after["completed_per_minute"][-1]["minute"]) <= datetime.now(UTC)
    grew = {p: after["queue_by_priority"][p] - before["queue_by_priority"][p] for p in "0123456789"}
    assert grew == {**dict.fromkeys("0123456789", 0), "9": 2, "2": 1}
    assert isinstance(after["pools"], list)


def _charts(env: ApiEnv, key: str) -> dict:  # type: ignore[type-arg]
    with env.client(key) as c:
        reply = c.get("/stats/charts")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())
