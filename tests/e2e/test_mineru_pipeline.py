"""``two_phase`` end to end with MinerU over HTTP: the ``mineru`` stage (in its Ray actor) sends
the fixture PDFs to MinerU 4.x's own ``/v1`` task router on loopback (the pdfium model in place
of MinerU's), long PDFs split into page ranges, and the content lists it gets back are chunked,
embedded, indexed and found by search."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.index.search import run_search
from ingest_ray.index.settings import IndexSettings
from ingest_ray.local_run import RunReport, run_local
from ingest_ray.stages.factories import blob_store, section
from ingest_ray.states import JobStatus
from ingest_ray.text.artifacts import load_chunks
from tests.conftest import FIXTURES, Services
from tests.integration.mineru import fake_model
from tests.integration.mineru.serving import serve
from tests.integration.mineru.task_backend import TaskStore, build_app

NAMES = [
    "article-peerj-cs-2017-vespa-ccby4-16pages.pdf",
    "article-hindawi-rehab-res-pract-2010-ccby-two-column-6pages.pdf",
    "sample-pdflatex-4pages.pdf",
    "sample-trivial-pdflatex-1page.pdf",
    "sample-libreoffice-password-encrypted.pdf",
]


@dataclass
class Run:
    settings: Settings
    report: RunReport
    store: TaskStore
    calls: list[tuple[int, str]]


@pytest.fixture(scope="module")
def mineru_run(
    services: Services, local_ray: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("e2e-mineru")
    tag, prefix = uuid.uuid4().hex[:8], f"test:{uuid.uuid4().hex[:12]}:"
    with pytest.MonkeyPatch.context() as patch:
        fake_model.install(patch)
        app = build_app(tmp / "mineru")
        with serve(app) as url:
            parse = {"mode": "api", "mineru_urls": [url], "mineru_tier": "basic",
                     "poll_interval_s": 0.1, "mineru_split_pages": 6}  # fmt: skip
            settings = Settings(
                kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
                redis_prefix=prefix, consumer_group=f"e2e-{tag}", runtime_name=f"e2e-{tag}",
                topic_requests=f"test.{tag}.requests", topic_results=f"test.{tag}.results",
                topic_mapping=f"test.{tag}.mapping", topic_deadletter=f"test.{tag}.dlq",
                topic_partitions=2, metrics_port=-1,
                sections={"storage": {"blob_url": str(tmp / "blobs")},
                          "index": {"lancedb_dir": str(tmp / "index")}, "parse": parse},
            )  # fmt: skip
            calls = len(fake_model.CALLS)
            sources = [
                DocumentSource(kind=SourceKind.PDF_PATH, value=str(FIXTURES / "pdfs" / n))
                for n in NAMES
            ]
            report = run_local(settings, sources, tenant="e2e-mineru", timeout=900)
            yield Run(settings, report, app.state.task_store, fake_model.CALLS[calls:])
    client = redis.Redis.from_url(services.redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def _jobs(run: Run) -> dict[str, object]:
    return {Path(t.request.source.value).name: t.job for t in run.report.tracked}


def test_two_phase_parses_every_pdf_through_minerus_router(mineru_run: Run) -> None:
    jobs = _jobs(mineru_run)
    for name, job in jobs.items():
        assert job is not None, name
        if name.startswith("sample-libreoffice-password"):
            assert job.status is JobStatus.FAILED  # type: ignore[attr-defined]
            assert job.error.type == "EncryptedPdfError"  # type: ignore[attr-defined]
            continue
        assert job.status is JobStatus.COMPLETED, (name, job.error)  # type: ignore[attr-defined]
        mineru = job.outputs["mineru"]  # type: ignore[attr-defined]
        assert mineru["parser"] == "mineru-api" and mineru["failed_pages"] == []
        assert job.outputs["index"]["indexed"] == job.outputs["chunk"]["chunk_count"] > 0  # type: ignore[attr-defined]
    assert jobs[NAMES[0]].outputs["mineru"]["pages"] == 16  # type: ignore[attr-defined]


def test_the_long_pdf_went_as_page_ranges_and_came_back_in_page_order(mineru_run: Run) -> None:
    pages = sorted(p for p, _ in mineru_run.calls)
    assert pages.count(6) + pages.count(5) >= 3  # 16 pages as 6 + 5 + 5 (and hindawi's 6)
    assert 16 not in pages
    job = _jobs(mineru_run)[NAMES[0]]
    content = blob_store(mineru_run.settings).get_json(job.outputs["mineru"]["content_sha256"])  # type: ignore[attr-defined]
    order = [item["page_idx"] for item in content]
    assert order == sorted(order) and set(order) == set(range(16))


def test_search_finds_text_minerus_router_returned(mineru_run: Run) -> None:
    index = section(mineru_run.settings, "index", IndexSettings)
    blobs = blob_store(mineru_run.settings)
    job = _jobs(mineru_run)[NAMES[1]]
    chunks = load_chunks(blobs, job.outputs["chunk"]["chunks_sha256"])  # type: ignore[attr-defined]
    words = max(chunks, key=lambda c: len(c.text)).text.split()
    sentence = " ".join(words[len(words) // 3 : len(words) // 3 + 14])
    hits = run_search(index, sentence, 5, "e2e-mineru")
    assert job.doc_key in [h.doc_key for h in hits]  # type: ignore[attr-defined]
