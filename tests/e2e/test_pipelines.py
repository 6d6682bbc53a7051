"""The real pipelines end to end: every fixture PDF through two_phase, search on what was
indexed, DOIs through the OpenAlex -> Unpaywall -> CORE chain served from captured responses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.index.search import build_sink, run_entity_search, run_search
from ingest_ray.index.settings import IndexSettings
from ingest_ray.local_run import RunReport, replay_settings, run_local
from ingest_ray.runtime.effects import work_item_from_job
from ingest_ray.runtime.stage_host import StageHost
from ingest_ray.stages.factories import blob_store, section
from ingest_ray.states import JobStatus
from ingest_ray.text.artifacts import load_chunks
from tests.conftest import FIXTURES, Services

PDFS = sorted((FIXTURES / "pdfs").glob("*.pdf"))
ENCRYPTED = "sample-libreoffice-password-encrypted.pdf"


@dataclass
class Ingested:
    settings: Settings
    report: RunReport

    def index(self) -> IndexSettings:
        return section(self.settings, "index", IndexSettings)


def _settings(services: Services, prefix: str, tmp: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=prefix, consumer_group=f"e2e-{tag}", runtime_name=f"e2e-{tag}",
        topic_requests=f"test.{tag}.requests", topic_results=f"test.{tag}.results",
        topic_mapping=f"test.{tag}.mapping", topic_deadletter=f"test.{tag}.dlq",
        topic_partitions=2, metrics_port=-1,
        sections={"storage": {"blob_url": str(tmp / "blobs")},
                  "index": {"lancedb_dir": str(tmp / "index")}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def fixture_pdfs(
    services: Services, local_ray: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ingested]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    settings = _settings(services, prefix, tmp_path_factory.mktemp("e2e"))
    sources = [DocumentSource(kind=SourceKind.PDF_PATH, value=str(p)) for p in PDFS]
    report = run_local(settings, sources, tenant="e2e", timeout=900)
    yield Ingested(settings, report)
    client = redis.Redis.from_url(services.redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def _by_name(ingested: Ingested) -> dict[str, object]:
    return {Path(t.request.source.value).name: t.job for t in ingested.report.tracked}


def test_every_fixture_pdf_runs_two_phase_and_the_encrypted_one_fails_cleanly(
    fixture_pdfs: Ingested,
) -> None:
    jobs = _by_name(fixture_pdfs)
    assert len(jobs) == len(PDFS) == 12
    for name, job in jobs.items():
        assert job is not None, name
        if name == ENCRYPTED:
            assert job.status is JobStatus.FAILED  # type: ignore[attr-defined]
            assert job.error.type == "EncryptedPdfError"  # type: ignore[attr-defined]
            assert job.error.stage == "mineru"  # type: ignore[attr-defined]
            continue
        assert job.status is JobStatus.COMPLETED, (name, job.error)  # type: ignore[attr-defined]
        assert job.pipeline == "two_phase"  # type: ignore[attr-defined]
        assert job.outputs["chunk"]["chunk_count"] > 0  # type: ignore[attr-defined]
        assert job.outputs["index"]["indexed"] == job.outputs["chunk"]["chunk_count"]  # type: ignore[attr-defined]


def test_search_finds_each_document_from_a_sentence_of_its_own_text(fixture_pdfs: Ingested) -> None:
    blobs = blob_store(fixture_pdfs.settings)
    for t in fixture_pdfs.report.tracked:
        job = t.job
        if job is None or job.status is not JobStatus.COMPLETED:
            continue
        chunks = load_chunks(blobs, job.outputs["chunk"]["chunks_sha256"])
        text = max(chunks, key=lambda c: len(c.text)).text
        words = text.split()
        sentence = " ".join(words[len(words) // 3 : len(words) // 3 + 14])
        hits = run_search(fixture_pdfs.index(), sentence, 5, "e2e")
        assert job.doc_key in [h.doc_key for h in hits], (
            Path(t.request.source.value).name,
            sentence,
        )


def test_duplicate_delivery_of_index_leaves_one_copy_of_each_chunk(fixture_pdfs: Ingested) -> None:
    done = next(
        t.job for t in fixture_pdfs.report.tracked if t.job and t.job.status is JobStatus.COMPLETED
    )
    assert done is not None
    sink = build_sink(fixture_pdfs.index())
    before = sink.count(tenant_id="e2e", doc_key=done.doc_key)
    item = work_item_from_job(
        done.model_copy(update={"status": JobStatus.PROCESSING}), _catalog(fixture_pdfs)
    )
    assert item is not None
    host = StageHost({"index": "ingest_ray.stages.factories:index"}, fixture_pdfs.settings)
    (result,) = asyncio.run(host.run("index", [item.stage_input("index")], 120))
    asyncio.run(host.aclose())
    assert (
        sink.count(tenant_id="e2e", doc_key=done.doc_key)
        == before
        == done.outputs["chunk"]["chunk_count"] + done.outputs["meta_index"]["indexed"]
    )
    sink.close()
    assert not hasattr(result, "error_type"), result


def _catalog(ingested: Ingested):  # type: ignore[no-untyped-def]
    from ingest_ray.pipelines.builtin import builtin_catalog

    return builtin_catalog(ingested.settings)


def test_dois_through_the_chain_from_captured_responses(
    services: Services, local_ray: None, redis_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(services, redis_prefix, tmp_path)
    dois = ["10.1371/journal.pone.0000030", "10.7554/eLife.01567",
            "10.1890/0012-9658(2006)87[2832:TIOPMA]2.0.CO;2", "10.9999/not-in-openalex"]  # fmt: skip
    sources = [DocumentSource(kind=SourceKind.DOI, value=d) for d in dois]
    with replay_settings(settings, FIXTURES / "apis") as replay:
        report = run_local(replay, sources, tenant="chain", timeout=600)
    jobs = {t.request.source.value: t.job for t in report.tracked}
    unknown = jobs.pop("10.9999/not-in-openalex")
    assert unknown is not None
    assert unknown.status is JobStatus.FAILED
    assert unknown.error is not None
    assert unknown.error.type == "WorkNotFoundError"
    for doi, job in jobs.items():
        assert job is not None
        assert job.status is JobStatus.COMPLETED, (doi, job.error)
        outcome = [e.data.get("outcome") for e in job.history if e.data.get("outcome")]
        assert outcome == ["no open-access full text"], doi  # offline: no publisher PDF fetched
        attempts = job.outputs["pdf_fetch"]["attempts"]
        assert attempts, doi
        assert job.outputs["meta_index"]["indexed"] == 1
    index = section(settings, "index", IndexSettings)
    hits = run_search(index, "Triose Phosphate Isomerase Deficiency", 3, "chain")
    assert hits[0].doc_key == "doi:10.1371/journal.pone.0000030"
    by_orcid = run_entity_search(index, "0000-0001-9535-7413", "chain")
    assert [h.doc_key for h in by_orcid] == ["doi:10.1371/journal.pone.0000030"]
