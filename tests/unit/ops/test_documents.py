"""Naming documents for people: titles (PDF info dictionary, first heading), file names, DOIs."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.documents import clean_title, document_label, first_heading, pdf_info_title
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.ledger.base import Job
from ingest_ray.samples import SAMPLES, write_samples
from ingest_ray.stages.base import StageInput
from ingest_ray.stages.index import title_and_doi
from ingest_ray.stages.metadata import MetadataStage
from ingest_ray.states import JobStatus
from tests.conftest import FIXTURES

PDFS = FIXTURES / "pdfs"


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("  Compare-and-Set   Job Ledgers ", "Compare-and-Set Job Ledgers"),
        ("PDF Example Document", "PDF Example Document"),
        ("6489122611071476 1..10", None),  # a producer's job number, not a title
        ("Microsoft Word - draft-v3.docx", None),
        ("paper.pdf", None),
        ("untitled", None),
        ("", None),
        (None, None),
        ("x" * 301, None),
    ],
)
def test_documents_clean_title_keeps_real_titles_only(raw: object, title: str | None) -> None:
    assert clean_title(raw) == title


def test_documents_pdf_info_title_reads_the_info_dictionary(tmp_path: Path) -> None:
    (sample, *_) = write_samples(tmp_path)
    assert pdf_info_title(sample) == SAMPLES[0].title
    assert pdf_info_title(PDFS / "sample-google-doc-with-image.pdf") == "PDF Example Document"
    assert (
        pdf_info_title(PDFS / "article-bmc-health-serv-res-2014-ccby-two-column-10pages.pdf")
        is None
    )
    assert pdf_info_title(PDFS / "sample-libreoffice-password-encrypted.pdf") is None
    assert pdf_info_title(PDFS / "sample-unreadable-metadata-4pages.pdf") is None
    assert pdf_info_title(tmp_path / "missing.pdf") is None


def test_documents_first_heading_prefers_the_top_level() -> None:
    items: list[dict[str, Any]] = [
        {"type": "text", "text": "Journal of Things, vol. 3"},
        {"type": "text", "text": "2", "text_level": 2},  # a bare number is no title
        {"type": "text", "text": "Methods in brief", "text_level": 2},
        {"type": "text", "text": "A Study of Ledgers", "text_level": 1},
    ]
    assert first_heading(items) == "A Study of Ledgers"
    assert first_heading(items[:3]) == "Methods in brief"
    assert first_heading([{"type": "text", "text": "body only"}]) is None


def test_metadata_stage_titles_a_local_pdf_from_its_info_dictionary(tmp_path: Path) -> None:
    (sample, *_) = write_samples(tmp_path)
    source = DocumentSource(kind=SourceKind.PDF_PATH, value=str(sample))
    item = StageInput(job_id="j", tenant_id="t", doc_key=source.doc_key(), pipeline="two_phase",
                      stage="metadata", attempt=1, source=source, metadata={}, outputs={})  # fmt: skip

    async def run() -> dict[str, Any]:
        stage = MetadataStage(AdapterSettings(rate_limit_backend="local"))
        try:
            return (await stage.run(item)).data
        finally:
            await stage.aclose()

    assert asyncio.run(run())["work"]["title"] == SAMPLES[0].title
    after_chunk = dataclasses.replace(item, outputs={"chunk": {"title": "First heading"}})
    assert title_and_doi(after_chunk) == ("First heading", None)


def _job(doc_key: str, **fields: Any) -> Job:
    now = datetime.now(UTC)
    return Job(job_id="01J", tenant_id="t", doc_key=doc_key, pipeline="two_phase",
               status=JobStatus.COMPLETED, created_at=now, updated_at=now, **fields)  # fmt: skip


def test_documents_label_is_title_else_file_name_else_doi() -> None:
    pdf = {"source": {"kind": "pdf_path", "value": "/root/papers/ledgers.pdf"}}
    assert document_label(_job("pdf_path:/root/papers/ledgers.pdf", metadata=pdf)) == "ledgers.pdf"
    titled = _job("pdf_path:/root/papers/ledgers.pdf", metadata=pdf,
                  outputs={"metadata": {"work": {"title": "Ledgers"}}})  # fmt: skip
    assert document_label(titled) == "Ledgers"
    headed = _job("pdf_path:/x.pdf", metadata=pdf, outputs={"chunk": {"title": "A Heading"}})
    assert document_label(headed) == "A Heading"
    upload = {"source": {"kind": "pdf_path", "value": "/blobs/ab/cd"},
              "request": {"file_name": "scan.pdf"}}  # fmt: skip
    assert document_label(_job("pdf:sha256:abcd", metadata=upload)) == "scan.pdf"
    assert document_label(_job("doi:10.1/x")) == "10.1/x"
    assert document_label(_job("text:0123")) == "text:0123"


def test_documents_find_jobs_matches_doc_key_or_title_and_pages() -> None:
    from ingest_ray.documents import find_jobs
    from ingest_ray.ledger.base import JobFilter, NewJob
    from ingest_ray.testing import InMemoryLedger

    ledger = InMemoryLedger()
    for n in range(7):
        meta = {"request": {"title": f"Ledger notes {n}"}} if n % 2 else {}
        ledger.create(NewJob(tenant_id="t", doc_key=f"doi:10.1/ledger-{n}", pipeline="auto",
                             metadata=meta))  # fmt: skip
    ledger.create(NewJob(tenant_id="t", doc_key="doi:10.1/other", pipeline="auto"))
    ledger.create(NewJob(tenant_id="u", doc_key="doi:10.1/ledger-x", pipeline="auto"))
    flt = JobFilter(tenant_id="t")
    first = find_jobs(ledger, flt, "LEDGER", limit=4)
    assert len(first.items) == 4 and first.next_cursor == first.items[-1].job_id
    rest = find_jobs(ledger, flt, "ledger", cursor=first.next_cursor, limit=4)
    assert len(rest.items) == 3 and rest.next_cursor is None
    assert {j.tenant_id for j in first.items + rest.items} == {"t"}
    titled = find_jobs(ledger, flt, "notes 3")
    assert [j.doc_key for j in titled.items] == ["doi:10.1/ledger-3"]
    short = find_jobs(ledger, flt, "ledger", limit=10, budget=2)
    assert len(short.items) == 1 and short.next_cursor is not None  # looked at two jobs only
