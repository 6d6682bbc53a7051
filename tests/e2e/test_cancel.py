"""Cancellation reaches the work and leaves no index rows, with the real stages and LanceDB:
a job cancelled while its embed stage runs never reaches the index; a two-phase job cancelled
after its metadata was indexed has that row taken back; a job cancelled just after its index
write landed (the index stage lingers, so the cancel arrives before the job completes) has its
rows deleted."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from ingest_ray.config import Settings
from ingest_ray.control import ControlInbox, JobControl
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.index.search import build_sink
from ingest_ray.index.settings import IndexSettings
from ingest_ray.kafka import KafkaClient, Producer
from ingest_ray.ledger import JobFilter
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.stages.factories import section
from ingest_ray.states import JobStatus
from tests.conftest import FIXTURES, Services

TENANT = "cancel"


@pytest.fixture
def runtime(
    services: Services, local_ray: None, redis_prefix: str, tmp_path: Path
) -> Iterator[Runtime]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=redis_prefix, consumer_group=f"cx-{tag}", runtime_name=f"cx-{tag}",
        topic_requests=f"test.{tag}.requests", topic_results=f"test.{tag}.results",
        topic_mapping=f"test.{tag}.mapping", topic_deadletter=f"test.{tag}.dlq",
        topic_partitions=1, metrics_port=-1,
        plugins=["ingest_ray.testing:use_flaky_stages"],
        sections={"storage": {"blob_url": str(tmp_path / "blobs")},
                  "index": {"lancedb_dir": str(tmp_path / "index")},
                  "flaky": {"rate": 0.0, "after_s": {"embed": 4.0, "index": 4.0}}},
    )  # fmt: skip
    KafkaClient.from_settings(settings).ensure_topics()
    rt = Runtime(settings, builtin_catalog(settings))
    rt.start(member="cancel-test")
    rt.start_ingress(1, tag="cx")
    yield rt
    rt.shutdown(member="cancel-test")


def _send(rt: Runtime, request: IngestRequest) -> None:
    with Producer(rt.settings.kafka_bootstrap_servers) as producer:
        producer.send(rt.settings.topic_requests, request, key=request.doc_key)


def _wait(predicate: Callable[[], bool], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s")


def _cancel_when(rt: Runtime, doc_key: str, ready: Callable[[object], bool]) -> str:
    """Cancel the document's job as soon as ``ready(job)``; wait until the cancel is done."""
    ledger = open_ledger(rt.settings)
    client = redis.Redis.from_url(rt.settings.redis_url, decode_responses=True)
    control = JobControl(ledger, ControlInbox.for_settings(client, rt.settings))

    def job() -> object | None:
        page = ledger.list_jobs(JobFilter(tenant_id=TENANT, doc_key=doc_key))
        return page.items[0] if page.items else None

    _wait(lambda: (j := job()) is not None and ready(j))
    job_id = job().job_id  # type: ignore[union-attr]
    assert control.cancel(job_id).changed
    inbox = ControlInbox.for_settings(client, rt.settings)
    _wait(lambda: inbox.pending() == 0, timeout=120)  # acted on: stage told, rows taken back
    assert ledger.get(job_id).status is JobStatus.CANCELLED
    ledger.close()
    client.close()
    return job_id


def _rows(rt: Runtime, doc_key: str) -> int:
    sink = build_sink(section(rt.settings, "index", IndexSettings))
    try:
        return sink.count(tenant_id=TENANT, doc_key=doc_key)
    finally:
        sink.close()


def test_cancel_while_embed_runs_leaves_no_rows(runtime: Runtime) -> None:
    # the embed stage lingers 4 s (checking its cancel token): cancel while it does
    text = "Embedding that a cancel interrupts, so the index never sees the document."
    request = IngestRequest(
        tenant_id=TENANT, source=DocumentSource(kind=SourceKind.TEXT, value=text)
    )
    _send(runtime, request)
    _cancel_when(runtime, request.doc_key, lambda j: j.stage == "embed")  # type: ignore[attr-defined]
    assert _rows(runtime, request.doc_key) == 0


def test_cancel_after_the_metadata_row_was_indexed_takes_it_back(runtime: Runtime) -> None:
    pdf = max((FIXTURES / "pdfs").glob("*.pdf"), key=lambda p: p.stat().st_size)
    request = IngestRequest(
        tenant_id=TENANT, source=DocumentSource(kind=SourceKind.PDF_PATH, value=str(pdf)),
        metadata={"title": "A title to index first", "abstract": "An abstract, indexed at once."},
    )  # fmt: skip
    _send(runtime, request)
    _cancel_when(runtime, request.doc_key, lambda j: "meta_index" in j.outputs)  # type: ignore[attr-defined]
    assert _rows(runtime, request.doc_key) == 0


def test_cancel_just_after_the_index_write_deletes_the_rows(runtime: Runtime) -> None:
    request = IngestRequest(
        tenant_id=TENANT,
        source=DocumentSource(kind=SourceKind.TEXT, value="Rows that must not survive a cancel."),
    )
    _send(runtime, request)
    # the index stage lingers 4 s after its write: cancel while it does
    _wait(lambda: _rows(runtime, request.doc_key) > 0)
    _cancel_when(runtime, request.doc_key, lambda j: True)
    assert _rows(runtime, request.doc_key) == 0
