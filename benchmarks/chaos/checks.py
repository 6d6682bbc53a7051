"""What a chaos run must show afterwards: every request is exactly one terminal job, the index
holds one copy of every (document, chunk), every job has exactly one result event after
``event_id`` dedupe, every failure and every dead letter carries its reason, and every
malformed message was dead-lettered exactly once."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ingest_ray import constants as c
from ingest_ray.config import Settings
from ingest_ray.events import IngestResult, decode
from ingest_ray.index.settings import IndexSettings
from ingest_ray.kafka.reader import read_topic
from ingest_ray.ledger.base import Job, JobFilter
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.stages.factories import section
from ingest_ray.states import JobStatus


@dataclass
class Findings:
    """The figures a run is judged by (all zero but the counts when it kept its promises)."""

    requested: int = 0
    jobs: int = 0
    completed: int = 0
    failed: int = 0
    not_terminal: int = 0
    lost: int = 0
    duplicated_jobs: int = 0
    duplicate_index_rows: int = 0
    unindexed_documents: int = 0
    missing_results: int = 0
    duplicated_results: int = 0
    result_messages: int = 0
    failures_without_reason: int = 0
    malformed_sent: int = 0
    malformed_dead_lettered: int = 0
    letters_without_reason: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def promises_kept(self) -> bool:
        """Nothing lost, nothing doubled, everything finished, every bad message accounted for."""
        return (
            self.lost == self.duplicated_jobs == self.not_terminal == 0
            and self.duplicate_index_rows == self.unindexed_documents == 0
            and self.missing_results == self.duplicated_results == 0
            and self.failures_without_reason == self.letters_without_reason == 0
            and self.malformed_dead_lettered == self.malformed_sent
        )


def all_jobs(settings: Settings, tenant: str) -> list[Job]:
    """Every job of the tenant (paged)."""
    ledger = open_ledger(settings)
    try:
        out: list[Job] = []
        cursor: str | None = None
        while True:
            page = ledger.list_jobs(JobFilter(tenant_id=tenant), cursor=cursor, limit=1000)
            out += page.items
            cursor = page.next_cursor
            if cursor is None:
                return out
    finally:
        ledger.close()


def check(settings: Settings, tenant: str, requested: set[str], malformed_sent: int) -> Findings:
    """Judge a finished run."""
    jobs = all_jobs(settings, tenant)
    f = Findings(requested=len(requested), jobs=len(jobs), malformed_sent=malformed_sent)
    per_doc = Counter(j.doc_key for j in jobs)
    f.lost = len(requested - set(per_doc))
    f.duplicated_jobs = sum(1 for n in per_doc.values() if n > 1)
    f.completed = sum(j.status is JobStatus.COMPLETED for j in jobs)
    f.failed = sum(j.status is JobStatus.FAILED for j in jobs)
    f.not_terminal = sum(not j.status.is_terminal for j in jobs)
    failures = [j for j in jobs if j.status is JobStatus.FAILED]
    f.failures_without_reason = sum(1 for j in failures if not (j.error and j.error.message))
    f.failure_reasons = dict(Counter(f"{j.error.stage}: {j.error.type}" for j in failures
                                     if j.error))  # fmt: skip
    _check_index(settings, tenant, jobs, f)
    _check_results(settings, jobs, f)
    _check_dead_letters(settings, f)
    return f


def _check_index(settings: Settings, tenant: str, jobs: list[Job], f: Findings) -> None:
    import lancedb  # noqa: PLC0415 - the index library loads on demand

    index = section(settings, "index", IndexSettings)
    db = lancedb.connect(index.lancedb_uri)
    table = db.open_table(index.chunks_table).to_arrow()
    rows = Counter(
        (t, d, ch)
        for t, d, ch in zip(
            table.column("tenant_id").to_pylist(),
            table.column("doc_key").to_pylist(),
            table.column("chunk_id").to_pylist(),
            strict=True,
        )
        if t == tenant
    )
    f.duplicate_index_rows = sum(n - 1 for n in rows.values() if n > 1)
    indexed = {d for _, d, ch in rows if ch != "meta"}
    expected = {j.doc_key for j in jobs if j.status is JobStatus.COMPLETED
                and int(j.outputs.get("index", {}).get("indexed", 0)) > 0}  # fmt: skip
    f.unindexed_documents = len(expected - indexed)


def _check_results(settings: Settings, jobs: list[Job], f: Findings) -> None:
    events: dict[str, set[str]] = defaultdict(set)
    for msg in read_topic(settings.kafka_bootstrap_servers, settings.topic_results, timeout=30):
        f.result_messages += 1
        event: Any = decode(msg.value())
        if isinstance(event, IngestResult):
            events[event.job_id].add(event.event_id)
    finished = [j for j in jobs if j.status in (JobStatus.COMPLETED, JobStatus.FAILED)]
    f.missing_results = sum(1 for j in finished if not events.get(j.job_id))
    f.duplicated_results = sum(1 for j in finished if len(events.get(j.job_id, ())) > 1)


def _check_dead_letters(settings: Settings, f: Findings) -> None:
    letters: dict[str, str] = {}
    for msg in read_topic(settings.kafka_bootstrap_servers, settings.topic_deadletter, timeout=30):
        headers = {k: v.decode("utf-8", "replace") for k, v in msg.headers() or []}
        if headers.get(c.DLQ_HEADER_KIND) == "message":
            letters[headers.get(c.DLQ_HEADER_EVENT_ID, "")] = headers.get(c.DLQ_HEADER_REASON, "")
    f.malformed_dead_lettered = len(letters)
    f.letters_without_reason = sum(1 for reason in letters.values() if not reason)
