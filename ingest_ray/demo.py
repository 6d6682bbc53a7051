"""The main job on the default local setup, as one function the CLI calls.

Until the pipelines run, the main job is the front half of the system: create the topics, publish
a handful of real-looking ingest requests (plus one duplicate and one unreadable message), run the
admission loop, and show the jobs the ledger now holds and the dead letter the bad message became.
"""

from __future__ import annotations

import threading

from rich.console import Console

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.base import JobFilter
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.render import jobs_table
from ingest_ray.workers.admit import run_admission

SAMPLE_SOURCES: tuple[tuple[SourceKind, str, int], ...] = (
    (SourceKind.DOI, "10.1371/journal.pone.0000030", 7),
    (SourceKind.DOI, "10.7554/eLife.01567", 5),
    (SourceKind.DOI, "10.1101/097196", 5),
    (SourceKind.OPENALEX, "W2741809807", 3),
    (SourceKind.TEXT, "Abstract: ingest_ray turns scholarly PDFs into searchable chunks.", 9),
)


def sample_requests(tenant: str) -> list[IngestRequest]:
    """The demo's requests, the first one sent twice to show idempotent admission."""
    requests = [
        IngestRequest(tenant_id=tenant, source=DocumentSource(kind=kind, value=value), priority=p)
        for kind, value, p in SAMPLE_SOURCES
    ]
    return [*requests, requests[0].model_copy(update={"request_id": requests[0].request_id + "-2"})]


def run_demo(settings: Settings, *, tenant: str, console: Console) -> None:
    """Create topics, publish the samples, admit them, and print what the ledger holds."""
    kafka = KafkaClient.from_settings(settings)
    for name, outcome in kafka.ensure_topics().items():
        console.print(f"[dim]topic {name}: {outcome}")
    requests = sample_requests(tenant)
    with kafka.producer() as producer:
        for request in requests:
            producer.send(settings.topic_requests, request, key=request.doc_key)
        producer.send_raw(
            settings.topic_requests, b'{"schema_version": 1, "oops": true', key="demo-bad"
        )
    console.print(f"published {len(requests)} requests and 1 unreadable message")

    ledger = RedisLedger.from_settings(settings)
    try:
        totals = run_admission(
            kafka,
            ledger,
            group_id=settings.consumer_group,
            topic=settings.topic_requests,
            dead_letter_topic=settings.topic_deadletter,
            stop=threading.Event(),
            idle_timeout=3.0,
        )
        console.print(
            f"admission: {totals.created} new job(s), {totals.duplicates} duplicate(s) "
            f"answered with the existing job, {totals.dead_letters} dead letter(s)"
        )
        page = ledger.list_jobs(JobFilter(tenant_id=tenant), limit=20)
        console.print(jobs_table(page.items))
        counts = ledger.counts(tenant_id=tenant)
        console.print(", ".join(f"{s.value}={n}" for s, n in counts.items()))
    finally:
        ledger.close()
