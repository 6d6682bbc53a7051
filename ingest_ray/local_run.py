"""The main job on one machine: run an IngestWorker and a MappingWorker in this process (on a
local Ray), publish ingest requests for files, folders and DOIs, and follow each job to its end.

Used by ``ingest-ray ingest`` and ``ingest-ray demo``. With ``replay``, the OpenAlex, Unpaywall
and CORE clients talk to a local server that serves captured API responses, so DOIs work offline.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest_ray.adapters.replay import ReplayServer, adapter_settings_for
from ingest_ray.config import Settings
from ingest_ray.documents import document_label
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.base import Job, JobFilter, Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.states import JobStatus
from ingest_ray.workers.ingest import IngestWorker
from ingest_ray.workers.mapping import MappingWorker

REPLAY_KEYS = (
    "openalex_base_url", "unpaywall_base_url", "core_base_url", "openalex_mailto",
    "openalex_api_key", "unpaywall_email", "core_api_key", "rate_limit_backend",
)  # fmt: skip


def guess_source(value: str) -> DocumentSource:
    """Tell a DOI, an OpenAlex id, a PDF URL, a local PDF and plain text apart."""
    lowered = value.lower()
    tail = value.rsplit("/", 1)[-1]
    if lowered.startswith(
        ("10.", "doi:", "https://doi.org/", "http://doi.org/", "https://dx.doi.org/")
    ):
        return DocumentSource(kind=SourceKind.DOI, value=value)
    if lowered.startswith(("w", "https://openalex.org/w")) and tail[1:].isdigit():
        return DocumentSource(kind=SourceKind.OPENALEX, value=value)
    if lowered.startswith(("http://", "https://")):
        return DocumentSource(kind=SourceKind.PDF_URL, value=value)
    return DocumentSource(kind=SourceKind.PDF_PATH, value=str(Path(value).expanduser().resolve()))


def expand_inputs(inputs: Sequence[str]) -> list[DocumentSource]:
    """Folders become the PDFs inside them (recursively, sorted); the rest as guessed."""
    sources: list[DocumentSource] = []
    for value in inputs:
        path = Path(value).expanduser()
        if path.is_dir():
            pdfs = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
            sources += [
                DocumentSource(kind=SourceKind.PDF_PATH, value=str(p.resolve())) for p in pdfs
            ]
        else:
            sources.append(guess_source(value))
    return sources


@dataclass
class Tracked:
    """One submitted document and what became of it."""

    request: IngestRequest
    job: Job | None = None

    @property
    def done(self) -> bool:
        return self.job is not None and self.job.status.is_terminal


@dataclass
class RunReport:
    """All submitted documents, in order."""

    tracked: list[Tracked] = field(default_factory=list)

    @property
    def failed(self) -> list[Tracked]:
        return [t for t in self.tracked if t.job is None or t.job.status.value != "completed"]


@contextlib.contextmanager
def replay_settings(settings: Settings, replay: Path | None) -> Iterator[Settings]:
    """``settings`` with the adapters pointed at a replay server of ``replay`` while open."""
    if replay is None:
        yield settings
        return
    with ReplayServer(replay) as server:
        adapters = adapter_settings_for(server.base_url).model_dump(include=set(REPLAY_KEYS))
        sections = {
            **settings.sections,
            "adapters": {**settings.sections.get("adapters", {}), **adapters},
            # the captured responses name real publishers' PDF URLs: offline, none is fetched
            "fetch": {**settings.sections.get("fetch", {}), "offline": True},
        }
        yield settings.model_copy(update={"sections": sections})


def run_local(
    settings: Settings,
    sources: Sequence[DocumentSource],
    *,
    tenant: str = "default",
    priority: int = 5,
    pipeline: str | None = None,
    timeout: float = 900.0,
    catalog: Catalog | None = None,
    on_progress: Callable[[list[Tracked]], None] = lambda _: None,
    should_stop: Callable[[], bool] = lambda: False,
    on_started: Callable[[], None] = lambda: None,
) -> RunReport:
    """Ingest ``sources`` end to end on a local runtime and wait for every job to finish (or
    until ``should_stop()``: then the runtime drains and stops, and the jobs left stay in the
    ledger, to be finished by the next run or a worker). ``on_started`` is called once both
    workers run."""
    catalog = catalog or builtin_catalog(settings)
    quiet = settings.model_copy(update={"metrics_port": -1})
    with contextlib.ExitStack() as stack:
        worker = IngestWorker(quiet, catalog, name=f"ingest-local-{os.getpid()}")
        worker.start()
        stack.callback(worker.stop, grace_s=settings.drain_grace_s)
        mapper = MappingWorker(quiet, catalog, name=f"mapping-local-{os.getpid()}")
        mapper.start()
        stack.callback(mapper.stop, grace_s=10)
        on_started()
        ledger = open_ledger(settings)
        stack.callback(ledger.close)
        requests = [
            IngestRequest(tenant_id=tenant, source=s, priority=priority, pipeline=pipeline)
            for s in sources
        ]
        report = RunReport([Tracked(r) for r in requests])
        with KafkaClient.from_settings(settings).producer() as producer:
            for t in report.tracked:
                producer.send(settings.topic_requests, t.request, key=t.request.doc_key)
        _follow(ledger, report, timeout, on_progress, should_stop)
        if not should_stop():
            _wait_for_mapping(mapper, report, catalog, should_stop=should_stop)
    return report


def _follow(
    ledger: Ledger,
    report: RunReport,
    timeout_s: float,
    on_progress: Callable[[list[Tracked]], None],
    should_stop: Callable[[], bool],
) -> None:
    deadline = time.monotonic() + timeout_s
    while (
        time.monotonic() < deadline
        and not all(t.done for t in report.tracked)
        and not should_stop()
    ):
        _refresh(ledger, report.tracked)
        on_progress(report.tracked)
        pause = follow_pause(sum(1 for t in report.tracked if not t.done))
        resume = time.monotonic() + pause
        while time.monotonic() < resume and not should_stop():
            time.sleep(min(FOLLOW_MIN_S, max(0.0, resume - time.monotonic())))
    for t in report.tracked:
        if t.job is not None:
            t.job = ledger.get(t.job.job_id)
    on_progress(report.tracked)


#: The follower reads every unfinished job each round, at most this many jobs a second: the
#: pause between rounds grows with their number, from ``FOLLOW_MIN_S`` to ``FOLLOW_MAX_S``. The
#: ``ingest-ray ingest`` process shares the cores with the pipeline it waits for: 500 jobs read
#: every 0.3 s took a fifth of its samples in a trace of the accelerator benchmark.
FOLLOW_READS_PER_S = 500.0
FOLLOW_MIN_S, FOLLOW_MAX_S = 0.3, 2.0


def follow_pause(unfinished: int) -> float:
    """Seconds between two rounds of reads with ``unfinished`` jobs left to follow."""
    return min(FOLLOW_MAX_S, max(FOLLOW_MIN_S, unfinished / FOLLOW_READS_PER_S))


def _refresh(ledger: Ledger, tracked: list[Tracked]) -> None:
    """Read the jobs not yet finished: the known ones in one batch (without their history; the
    last read takes it), and each not yet admitted by its document key."""
    known = [t for t in tracked if t.job is not None and not t.done]
    for t, job in zip(known, ledger.get_many([t.job.job_id for t in known if t.job]), strict=True):
        t.job = job or t.job
    for t in tracked:
        if t.job is None:
            page = ledger.list_jobs(
                JobFilter(tenant_id=t.request.tenant_id, doc_key=t.request.doc_key), limit=1
            )
            t.job = page.items[0] if page.items else None


def _wait_for_mapping(
    mapper: MappingWorker,
    report: RunReport,
    catalog: Catalog,
    timeout_s: float = 60.0,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Until every completed job of a pipeline that maps was mapped: each sent one mapping
    event (after its mapping stage, or when it finished before reaching it)."""
    expected = sum(
        1
        for t in report.tracked
        if t.job is not None
        and t.job.status is JobStatus.COMPLETED
        and t.job.pipeline in catalog.pipelines
        and catalog.pipelines[t.job.pipeline].mapping_after is not None
    )
    deadline = time.monotonic() + timeout_s
    while mapper.mapped < expected and time.monotonic() < deadline and not should_stop():
        time.sleep(0.2)


def request_label(request: IngestRequest) -> str:
    """A submitted document before its job exists: its file name, else its identifier."""
    value = request.source.value
    if request.source.kind in (SourceKind.PDF_PATH, SourceKind.PDF_URL):
        return value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or value
    return value


def summary_rows(report: RunReport) -> list[dict[str, Any]]:
    """One row per document for the final table: ``document`` is its title, else its file
    name, else its DOI; ``doc_key`` and ``job_id`` are there for ``--json`` and ``-v``."""
    rows = []
    for t in report.tracked:
        job = t.job
        outputs = job.outputs if job else {}
        outcome = _outcome(job) if job else None
        error = f"{job.error.type}: {job.error.message}" if job and job.error else ""
        rows.append({
            "document": document_label(job) if job else request_label(t.request),
            "status": job.status.value if job else "not admitted",
            "pages": outputs.get("mineru", {}).get("pages", "-"),
            "chunks": outputs.get("chunk", {}).get("chunk_count", "-"),
            "pdf from": outputs.get("pdf_fetch", {}).get("pdf_source", "-"),
            "note": outcome or error,
            "doc_key": t.request.doc_key,
            "job_id": job.job_id if job else None,
        })  # fmt: skip
    return rows


def _outcome(job: Job) -> str | None:
    return next((e.data["outcome"] for e in reversed(job.history) if e.data.get("outcome")), None)
