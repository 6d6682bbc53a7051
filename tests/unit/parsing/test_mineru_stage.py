"""The ``mineru`` stage: reads the fetched PDF from the blob store, stores the content list, and
fails a job with typed, permanent errors when there is nothing (readable) to parse."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.errors import IngestError
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.parsing.errors import (
    EncryptedPdfError,
    MissingPdfError,
    NoTextError,
    ParserCrashedError,
)
from ingest_ray.parsing.parsers import CpuParser, ParseResult
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import Stage, StageInput, StageOutput
from ingest_ray.stages.mineru import MineruStage
from ingest_ray.storage.blobs import FileBlobStore
from tests.conftest import FIXTURES
from tests.unit.parsing.pdfs import make_pdf


def _input(outputs: dict[str, Any]) -> StageInput:
    return StageInput(
        job_id="job-1",
        tenant_id="t",
        doc_key="pdf_url:https://example.org/a.pdf",
        pipeline="two_phase",
        stage="mineru",
        attempt=1,
        source=DocumentSource(kind=SourceKind.PDF_URL, value="https://example.org/a.pdf"),
        outputs=outputs,
    )


def _run(stage: MineruStage, item: StageInput) -> StageOutput:
    async def go() -> StageOutput:
        try:
            return await stage.run(item)
        finally:
            await stage.aclose()

    return asyncio.run(go())


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


class _FakeParser:
    name = "mineru-api"

    def __init__(self, result: ParseResult | Exception) -> None:
        self.result = result
        self.seen: list[Path] = []
        self.closed = False

    async def parse(self, pdf: Path) -> ParseResult:
        self.seen.append(pdf)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def parse_many(
        self, pdfs: Sequence[Path], pages: Sequence[int | None] | None = None
    ) -> list[ParseResult | IngestError]:
        out: list[ParseResult | IngestError] = []
        for pdf in pdfs:
            try:
                out.append(await self.parse(pdf))
            except IngestError as exc:
                out.append(exc)
        return out

    async def aclose(self) -> None:
        self.closed = True


def test_mineru_stage_implements_the_stage_protocol(blobs: FileBlobStore) -> None:
    stage = MineruStage(ParseSettings(mode="cpu"), blobs)
    assert isinstance(stage, Stage)
    assert (stage.name, stage.batch_size) == ("mineru", 8)
    assert isinstance(stage.parser, CpuParser)


def test_mineru_stage_parses_the_fetched_pdf_and_stores_the_content_list(
    blobs: FileBlobStore,
) -> None:
    pdf = FIXTURES / "pdfs" / "article-hindawi-rehab-res-pract-2010-ccby-two-column-6pages.pdf"
    digest = blobs.put(pdf.read_bytes())
    out = _run(
        MineruStage(ParseSettings(mode="cpu"), blobs), _input({"pdf_fetch": {"pdf_sha256": digest}})
    )
    assert set(out.data) == {"content_sha256", "pages", "items", "parser", "failed_pages"}
    assert out.data["pages"] == 6 and out.data["parser"] == "pdfium"
    content = blobs.get_json(out.data["content_sha256"])
    assert len(content) == out.data["items"] > 20
    intro = next(item for item in content if item.get("text") == "1. Introduction")
    assert (intro["type"], intro["text_level"], intro["page_idx"]) == ("text", 1, 0)
    assert not out.finish


def test_mineru_stage_hands_the_blob_path_to_its_parser(blobs: FileBlobStore) -> None:
    digest = blobs.put(b"%PDF-1.4 stand-in")
    content = [{"type": "text", "text": "hello", "page_idx": 0}]
    parser = _FakeParser(ParseResult(content_list=content, pages=1, parser="mineru-api"))
    stage = MineruStage(ParseSettings(), blobs, parser=parser)
    out = _run(stage, _input({"pdf_fetch": {"pdf_sha256": digest}}))
    assert parser.seen == [blobs.path(digest)] and parser.closed
    assert out.data == {
        "content_sha256": blobs.put_json(content),
        "pages": 1,
        "items": 1,
        "parser": "mineru-api",
        "failed_pages": [],
    }


@pytest.mark.parametrize(
    "outputs",
    [
        {},
        {"pdf_fetch": {"attempts": []}},
        {"pdf_fetch": {"pdf_sha256": "abc"}},
        {"pdf_fetch": {"pdf_sha256": "0" * 64}},
    ],
)
def test_mineru_stage_fails_without_a_fetched_pdf(
    blobs: FileBlobStore, outputs: dict[str, Any]
) -> None:
    stage = MineruStage(ParseSettings(mode="cpu"), blobs)
    with pytest.raises(MissingPdfError) as info:
        _run(stage, _input(outputs))
    assert not info.value.retryable
    assert (info.value.job_id, info.value.stage) == ("job-1", "mineru")


def test_mineru_stage_fails_a_pdf_without_text(blobs: FileBlobStore) -> None:
    digest = blobs.put(make_pdf([[], []]))
    with pytest.raises(NoTextError) as info:
        _run(
            MineruStage(ParseSettings(mode="cpu"), blobs),
            _input({"pdf_fetch": {"pdf_sha256": digest}}),
        )
    assert "2 page(s)" in str(info.value)


def test_mineru_stage_passes_parser_errors_on_with_job_context(blobs: FileBlobStore) -> None:
    encrypted = FIXTURES / "pdfs" / "sample-libreoffice-password-encrypted.pdf"
    digest = blobs.put(encrypted.read_bytes())
    with pytest.raises(EncryptedPdfError) as info:
        _run(
            MineruStage(ParseSettings(mode="cpu"), blobs),
            _input({"pdf_fetch": {"pdf_sha256": digest}}),
        )
    assert (info.value.job_id, info.value.stage) == ("job-1", "mineru")


def test_mineru_stage_run_batch_fails_only_the_bad_item(blobs: FileBlobStore) -> None:
    good = blobs.put(b"%PDF good")
    content = [{"type": "text", "text": "ok", "page_idx": 0}]
    stage = MineruStage(
        ParseSettings(),
        blobs,
        parser=_FakeParser(ParseResult(content_list=content, pages=1, parser="pdfium")),
    )
    results = asyncio.run(
        stage.run_batch([_input({"pdf_fetch": {"pdf_sha256": good}}), _input({})])
    )
    assert isinstance(results[0], StageOutput)
    assert isinstance(results[1], MissingPdfError)


def test_mineru_stage_does_not_store_anything_when_the_parser_fails(
    blobs: FileBlobStore,
) -> None:
    digest = blobs.put(b"%PDF crash")
    stage = MineruStage(ParseSettings(), blobs, parser=_FakeParser(ParserCrashedError("boom")))
    with pytest.raises(ParserCrashedError):
        _run(stage, _input({"pdf_fetch": {"pdf_sha256": digest}}))
    stored = [p for p in blobs.root.rglob("*") if p.is_file()]
    assert stored == [blobs.path(digest)]
