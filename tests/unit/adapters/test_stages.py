"""The metadata and pdf_fetch stages against the replay server and a fake fetcher."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.adapters.errors import (
    NoOpenAccessRetryableError,
    UnsupportedSourceError,
    WorkNotFoundError,
)
from ingest_ray.adapters.replay import ReplayServer
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.fetch import FetchFailedError, NotAPdfError
from ingest_ray.stages.base import Stage, StageInput, StageOutput
from ingest_ray.stages.metadata import MetadataStage
from ingest_ray.stages.pdf_fetch import NO_OPEN_ACCESS, PdfFetchStage
from tests.unit.adapters.conftest import FakeFetcher

WORK_KEYS = {
    "openalex_id",
    "doi",
    "title",
    "abstract",
    "publication_year",
    "authors",
    "topics",
    "is_oa",
    "oa_status",
    "license",
    "referenced_works",
}


def _item(
    kind: SourceKind,
    value: str,
    *,
    stage: str,
    metadata: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
) -> StageInput:
    source = DocumentSource(kind=kind, value=value)
    return StageInput(
        job_id="job-1",
        tenant_id="t",
        doc_key=source.doc_key(),
        pipeline="two_phase",
        stage=stage,
        attempt=1,
        source=source,
        metadata=metadata or {},
        outputs=outputs or {},
    )


def _metadata(settings: AdapterSettings, item: StageInput) -> StageOutput:
    async def main() -> StageOutput:
        stage = MetadataStage(settings)
        try:
            return await stage.run(item)
        finally:
            await stage.aclose()

    return asyncio.run(main())


def _pdf_fetch(settings: AdapterSettings, fetcher: FakeFetcher, item: StageInput) -> StageOutput:
    async def main() -> StageOutput:
        stage = PdfFetchStage(settings, fetcher)
        try:
            return await stage.run(item)
        finally:
            await stage.aclose()

    return asyncio.run(main())


def test_metadata_stage_implements_stage_protocol(settings: AdapterSettings) -> None:
    async def main() -> None:
        stages = [MetadataStage(settings), PdfFetchStage(settings, FakeFetcher())]
        for stage in stages:
            assert isinstance(stage, Stage)
            await stage.aclose()

    asyncio.run(main())
    assert (MetadataStage.name, PdfFetchStage.name) == ("metadata", "pdf_fetch")


def test_metadata_stage_doi_output_matches_contract(settings: AdapterSettings) -> None:
    out = _metadata(settings, _item(SourceKind.DOI, "10.7717/PEERJ.4375", stage="metadata"))
    assert set(out.data) == {"work", "pdf_candidates"}
    assert set(out.data["work"]) == WORK_KEYS
    assert out.data["work"]["doi"] == "10.7717/peerj.4375"
    assert out.data["pdf_candidates"][0] == {
        "source": "openalex",
        "url": "https://peerj.com/articles/4375.pdf",
        "version": "publishedVersion",
        "license": "cc-by",
    }
    assert not out.finish
    assert len(json.dumps(out.data)) < 20_000


def test_metadata_stage_openalex_source_null_title_uses_given_title(
    settings: AdapterSettings,
) -> None:
    item = _item(
        SourceKind.OPENALEX, "W4234567890", stage="metadata", metadata={"title": "Given title"}
    )
    out = _metadata(settings, item)
    assert out.data["work"]["title"] == "Given title"
    assert out.data["work"]["openalex_id"] == "W4234567890"
    assert out.data["pdf_candidates"] == []


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (SourceKind.PDF_PATH, "/data/paper.pdf"),
        (SourceKind.PDF_URL, "https://example.org/paper.pdf"),
        (SourceKind.TEXT, "Some text"),
    ],
)
def test_metadata_stage_non_doi_sources_make_no_api_call(
    settings: AdapterSettings, replay: ReplayServer, kind: SourceKind, value: str
) -> None:
    item = _item(kind, value, stage="metadata", metadata={"title": "  My paper ", "year": 1})
    out = _metadata(settings, item)
    assert replay.count() == 0
    assert out.data["work"]["title"] == "My paper"
    assert out.data["work"]["openalex_id"] is None and out.data["work"]["authors"] == []
    assert set(out.data["work"]) == WORK_KEYS
    assert out.data["pdf_candidates"] == []


def test_metadata_stage_unknown_doi_fails_permanently_with_context(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    with pytest.raises(WorkNotFoundError) as info:
        _metadata(settings, _item(SourceKind.DOI, "10.9999/unknown", stage="metadata"))
    assert not info.value.retryable
    assert (info.value.job_id, info.value.stage) == ("job-1", "metadata")
    assert replay.count() == 1


def test_pdf_fetch_stage_two_phase_elife_gets_pdf_from_core(settings: AdapterSettings) -> None:
    doi = "10.7554/elife.01567"
    meta = _metadata(settings, _item(SourceKind.DOI, doi, stage="metadata"))
    iris = meta.data["pdf_candidates"][0]["url"]
    fetcher = FakeFetcher({iris: NotAPdfError("landing page", url=iris)}, default_ok=True)
    item = _item(SourceKind.DOI, doi, stage="pdf_fetch", outputs={"metadata": meta.data})
    out = _pdf_fetch(settings, fetcher, item)
    assert not out.finish
    assert out.data["pdf_source"] == "core"
    assert out.data["pdf_url"] == "https://core.ac.uk/download/90000001.pdf"
    assert out.data["pdf_sha256"] == FakeFetcher.pdf_for(out.data["pdf_url"]).sha256
    assert out.data["pdf_size"] == 1234
    assert [a["source"] for a in out.data["attempts"]] == ["openalex", "unpaywall", "core"]
    assert set(out.data["attempts"][0]) == {"source", "url", "outcome"}
    json.dumps(out.data)


def test_pdf_fetch_stage_closed_doi_finishes_without_failing(settings: AdapterSettings) -> None:
    doi = "10.1023/a:1007154515475"
    out = _pdf_fetch(settings, FakeFetcher(), _item(SourceKind.DOI, doi, stage="pdf_fetch"))
    assert out.finish is True
    assert out.outcome == NO_OPEN_ACCESS
    assert [a["outcome"] for a in out.data["attempts"]] == ["no open-access PDF URL"] * 3


def test_pdf_fetch_stage_all_permanent_failures_finish(settings: AdapterSettings) -> None:
    url = "https://www.pnas.org/content/pnas/111/45/E4832.full.pdf"
    fetcher = FakeFetcher({url: NotAPdfError("html", url=url)})
    item = _item(SourceKind.DOI, "10.1073/pnas.1414271111", stage="pdf_fetch")
    out = _pdf_fetch(settings, fetcher, item)
    assert out.finish and out.outcome == NO_OPEN_ACCESS
    assert fetcher.urls == [url]


def test_pdf_fetch_stage_retryable_failure_raises_retryable(settings: AdapterSettings) -> None:
    url = "https://www.pnas.org/content/pnas/111/45/E4832.full.pdf"
    fetcher = FakeFetcher({url: FetchFailedError("timeout", url=url, retry_after=12.0)})
    item = _item(SourceKind.DOI, "10.1073/pnas.1414271111", stage="pdf_fetch")
    with pytest.raises(NoOpenAccessRetryableError) as info:
        _pdf_fetch(settings, fetcher, item)
    assert info.value.retryable and info.value.retry_after == 12.0
    assert (info.value.job_id, info.value.stage) == ("job-1", "pdf_fetch")
    assert "unpaywall: retryable" in info.value.message


def test_pdf_fetch_stage_pdf_url_source_fetches_that_url(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    url = "https://example.org/paper.pdf"
    fetcher = FakeFetcher(default_ok=True)
    out = _pdf_fetch(settings, fetcher, _item(SourceKind.PDF_URL, url, stage="pdf_fetch"))
    assert fetcher.urls == [url]
    assert (out.data["pdf_source"], out.data["pdf_url"]) == ("url", url)
    assert replay.count() == 0


def test_pdf_fetch_stage_pdf_url_errors_propagate(settings: AdapterSettings) -> None:
    url = "https://example.org/paper.pdf"
    fetcher = FakeFetcher({url: NotAPdfError("html", url=url)})
    with pytest.raises(NotAPdfError):
        _pdf_fetch(settings, fetcher, _item(SourceKind.PDF_URL, url, stage="pdf_fetch"))


def test_pdf_fetch_stage_pdf_path_source_stores_local_file(
    settings: AdapterSettings, tmp_path: Path
) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(b"%PDF-1.4 tiny")
    fetcher = FakeFetcher()
    out = _pdf_fetch(settings, fetcher, _item(SourceKind.PDF_PATH, str(path), stage="pdf_fetch"))
    assert fetcher.local == [path]
    assert out.data["pdf_source"] == "local" and out.data["pdf_url"] is None
    assert fetcher.urls == []


def test_pdf_fetch_stage_pdf_blob_source_hands_on_the_stored_upload(
    settings: AdapterSettings, tmp_path: Path
) -> None:
    from ingest_ray.fetch import FetchSettings, SafeFetcher
    from ingest_ray.storage import FileBlobStore

    blobs = FileBlobStore(tmp_path / "blobs")
    digest = blobs.put(b"%PDF-1.4 uploaded")
    fetcher = SafeFetcher(FetchSettings(offline=True), blobs)
    out = _pdf_fetch(settings, fetcher, _item(SourceKind.PDF_BLOB, digest, stage="pdf_fetch"))
    assert (out.data["pdf_sha256"], out.data["pdf_source"]) == (digest, "upload")
    assert out.data["pdf_size"] == len(b"%PDF-1.4 uploaded")


def test_pdf_fetch_stage_refuses_text_source(settings: AdapterSettings) -> None:
    with pytest.raises(UnsupportedSourceError):
        _pdf_fetch(settings, FakeFetcher(), _item(SourceKind.TEXT, "words", stage="pdf_fetch"))


def test_pdf_fetch_stage_closes_fetcher(settings: AdapterSettings) -> None:
    fetcher = FakeFetcher()

    async def main() -> None:
        await PdfFetchStage(settings, fetcher).aclose()

    asyncio.run(main())
    assert fetcher.closed
