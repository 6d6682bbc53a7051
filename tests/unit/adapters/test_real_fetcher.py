"""The chain and the pdf_fetch stage through the real SafeFetcher, against loopback only."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from ingest_ray.adapters.candidates import PdfCandidate
from ingest_ray.adapters.chain import ChainResult, OpenAccessChain
from ingest_ray.adapters.replay import ReplayServer
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.fetch import FetchSettings, SafeFetcher
from ingest_ray.stages.base import StageInput, StageOutput
from ingest_ray.stages.pdf_fetch import PdfFetchStage
from ingest_ray.storage.blobs import FileBlobStore
from tests.conftest import FIXTURES

PDF = FIXTURES / "pdfs" / "sample-trivial-pdflatex-1page.pdf"


def _fetch_settings(tmp_path: Path) -> FetchSettings:
    # loopback is allowed here only because the test server listens on 127.0.0.1
    return FetchSettings(allow_loopback=True, total_timeout_s=10.0)


def test_chain_with_real_fetcher_skips_html_and_stores_pdf(
    replay: ReplayServer, tmp_path: Path
) -> None:
    landing = replay.add_file("/files/landing", b"<html>paywall</html>", content_type="text/html")
    paper = replay.add_file("/files/paper.pdf", PDF.read_bytes())
    blobs = FileBlobStore(tmp_path / "blobs")

    async def main() -> ChainResult:
        fetcher = SafeFetcher(_fetch_settings(tmp_path), blobs)
        chain = OpenAccessChain(fetcher)
        try:
            return await chain.find_pdf(
                doi=None,
                openalex_candidates=[
                    PdfCandidate("openalex", landing),
                    PdfCandidate("openalex", paper),
                ],
            )
        finally:
            await fetcher.aclose()

    result = asyncio.run(main())
    assert result.pdf is not None and result.candidate is not None
    assert result.candidate.url == paper
    assert result.pdf.sha256 == hashlib.sha256(PDF.read_bytes()).hexdigest()
    assert blobs.get(result.pdf.sha256) == PDF.read_bytes()
    assert "NotAPdfError" in result.attempts[0].outcome
    assert result.attempts[1].outcome == "ok"


def test_pdf_fetch_stage_from_settings_fetches_pdf_url(
    replay: ReplayServer, settings: AdapterSettings, tmp_path: Path
) -> None:
    paper = replay.add_file("/files/paper.pdf", PDF.read_bytes())
    blobs = FileBlobStore(tmp_path / "blobs")
    source = DocumentSource(kind=SourceKind.PDF_URL, value=paper)
    item = StageInput("j", "t", source.doc_key(), "two_phase", "pdf_fetch", 1, source)

    async def main() -> StageOutput:
        stage = PdfFetchStage.from_settings(settings, _fetch_settings(tmp_path), blobs)
        try:
            return await stage.run(item)
        finally:
            await stage.aclose()

    out = asyncio.run(main())
    assert out.data["pdf_source"] == "url"
    assert out.data["pdf_size"] == PDF.stat().st_size
    assert blobs.exists(out.data["pdf_sha256"])
