"""The sandboxed CPU parser on every shared fixture PDF, and on hostile input: encrypted, garbage,
truncated, too slow, too hungry, too long. Each fixture is parsed once (module-scoped)."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from ingest_ray.parsing.errors import (
    BrokenPdfError,
    EncryptedPdfError,
    ParseError,
    ParseMemoryError,
    ParseTimeoutError,
    TooManyPagesError,
)
from ingest_ray.parsing.parsers import CpuParser, ParseResult
from ingest_ray.parsing.settings import ParseSettings
from tests.conftest import FIXTURES
from tests.unit.parsing.pdfs import make_pdf

PDFS = FIXTURES / "pdfs"
ENCRYPTED = "sample-libreoffice-password-encrypted.pdf"
#: fixtures whose text clearly has section headings, with one heading each must yield
HEADINGS = {
    "article-bmc-health-serv-res-2014-ccby-two-column-10pages.pdf": "Background",
    "article-hindawi-rehab-res-pract-2010-ccby-two-column-6pages.pdf": "2. Methods",
    "article-peerj-cs-2017-vespa-ccby4-16pages.pdf": "INTRODUCTION",
    "sample-latex-multicolumn-3pages.pdf": "Abstract",
    "sample-pdflatex-with-image.pdf": "1 Your Chapter",
}


def _parse(path: Path, settings: ParseSettings | None = None) -> ParseResult:
    return asyncio.run(CpuParser(settings or ParseSettings(mode="cpu")).parse(path))


@pytest.fixture(scope="module")
def parsed() -> dict[str, ParseResult | ParseError]:
    """Every fixture PDF parsed once: its result, or the typed error it failed with."""
    results: dict[str, ParseResult | ParseError] = {}
    for path in sorted(PDFS.glob("*.pdf")):
        try:
            results[path.name] = _parse(path)
        except ParseError as exc:
            results[path.name] = exc
    return results


def _page_count(path: Path) -> int:
    document = pdfium.PdfDocument(str(path))
    try:
        return len(document)
    finally:
        document.close()


def test_cpu_parser_sees_every_fixture_pdf(parsed: dict[str, object]) -> None:
    assert len(parsed) >= 12  # the shared set; an empty glob must not pass silently
    assert ENCRYPTED in parsed


def test_cpu_parser_parses_every_readable_fixture_into_a_valid_content_list(
    parsed: dict[str, ParseResult | ParseError],
) -> None:
    for name, result in parsed.items():
        if name == ENCRYPTED:
            continue
        assert isinstance(result, ParseResult), f"{name}: {result!r}"
        assert result.parser == "pdfium"
        assert result.content_list, name
        assert any(item.get("text", "").strip() for item in result.content_list), name
        for item in result.content_list:
            assert item["type"] in {"text", "image"}, (name, item)
            assert 0 <= item["page_idx"] < result.pages, (name, item)
            x0, y0, x1, y1 = item["bbox"]
            assert x0 <= x1 and y0 <= y1, (name, item)
            if item["type"] == "text":
                assert item["text"].strip(), (name, item)
                assert item.get("text_level", 1) >= 1, (name, item)
            else:
                assert "text_level" not in item, (name, item)


def test_cpu_parser_page_counts_match_pdfium(parsed: dict[str, ParseResult | ParseError]) -> None:
    for name, result in parsed.items():
        if isinstance(result, ParseResult) and not name.startswith("sample-unreadable"):
            assert result.pages == _page_count(PDFS / name), name


def test_cpu_parser_finds_section_headings(parsed: dict[str, ParseResult | ParseError]) -> None:
    for name, expected in HEADINGS.items():
        result = parsed[name]
        assert isinstance(result, ParseResult)
        headings = [i["text"] for i in result.content_list if "text_level" in i]
        assert expected in headings, (name, headings)


def test_cpu_parser_finds_the_bmc_article_sections_in_order(
    parsed: dict[str, ParseResult | ParseError],
) -> None:
    result = parsed["article-bmc-health-serv-res-2014-ccby-two-column-10pages.pdf"]
    assert isinstance(result, ParseResult)
    headings = [i["text"] for i in result.content_list if "text_level" in i]
    sections = ["Background", "Methods", "Results", "Discussion", "Conclusions"]
    positions = [headings.index(s) for s in sections]
    assert positions == sorted(positions)
    body = next(i for i in result.content_list if i["text"].startswith("Background: Knowledge"))
    assert "text_level" not in body
    assert body["page_idx"] == 0


def test_cpu_parser_keeps_body_text_readable(parsed: dict[str, ParseResult | ParseError]) -> None:
    result = parsed["article-bmc-health-serv-res-2014-ccby-two-column-10pages.pdf"]
    assert isinstance(result, ParseResult)
    text = " ".join(i.get("text", "") for i in result.content_list)
    # a hyphenated line break ("expec-/tations") is glued back together
    assert "expectations are high" in text
    assert "\x02" not in text


def test_cpu_parser_reports_images_with_boxes(parsed: dict[str, ParseResult | ParseError]) -> None:
    result = parsed["sample-pdflatex-with-image.pdf"]
    assert isinstance(result, ParseResult)
    images = [i for i in result.content_list if i["type"] == "image"]
    assert len(images) == 1
    assert images[0]["img_caption"] == [] and len(images[0]["bbox"]) == 4


def test_cpu_parser_recovers_the_damaged_fixture(
    parsed: dict[str, ParseResult | ParseError],
) -> None:
    result = parsed["sample-unreadable-metadata-4pages.pdf"]
    assert isinstance(result, ParseResult)
    assert "Wirewound" in " ".join(i.get("text", "") for i in result.content_list)


def test_cpu_parser_fails_the_encrypted_fixture_with_the_encrypted_error(
    parsed: dict[str, ParseResult | ParseError],
) -> None:
    error = parsed[ENCRYPTED]
    assert isinstance(error, EncryptedPdfError)
    assert not error.retryable
    assert "encrypted" in str(error)


def test_cpu_parser_fails_garbage_bytes_cleanly(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    with pytest.raises(BrokenPdfError) as info:
        _parse(garbage)
    assert not info.value.retryable


def test_cpu_parser_fails_a_truncated_pdf_cleanly(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pdf"
    source = PDFS / "article-hindawi-rehab-res-pract-2010-ccby-two-column-6pages.pdf"
    truncated.write_bytes(source.read_bytes()[:1500])
    with pytest.raises(BrokenPdfError):
        _parse(truncated)


def test_cpu_parser_refuses_more_pages_than_the_cap(tmp_path: Path) -> None:
    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(make_pdf([["one"], ["two"], ["three"]]))
    with pytest.raises(TooManyPagesError) as info:
        _parse(pdf, ParseSettings(mode="cpu", max_pages=2))
    assert "3 pages" in str(info.value)
    assert _parse(pdf, ParseSettings(mode="cpu", max_pages=3)).pages == 3


def test_cpu_parser_kills_a_child_that_runs_out_of_time(tmp_path: Path) -> None:
    pdf = tmp_path / "small.pdf"
    pdf.write_bytes(make_pdf([["hello"]]))
    with pytest.raises(ParseTimeoutError) as info:
        _parse(pdf, ParseSettings(mode="cpu", timeout_s=0.01))
    assert not info.value.retryable
    # the calling process is fine and the next parse works
    assert _parse(pdf).content_list[0]["text"] == "hello"


def test_cpu_parser_reports_a_child_that_cannot_even_load_under_the_memory_cap(
    tmp_path: Path,
) -> None:
    pdf = tmp_path / "small.pdf"
    pdf.write_bytes(make_pdf([["hello"]]))
    with pytest.raises(ParseMemoryError):
        _parse(pdf, ParseSettings(mode="cpu", memory_mb=1))


def test_cpu_parser_reports_a_page_too_big_for_the_memory_cap(tmp_path: Path) -> None:
    # one page with ~2 million characters: pdfium's text page alone needs far more than 128 MiB
    pdf = tmp_path / "dense.pdf"
    pdf.write_bytes(make_pdf([["word " * 20] * 20_000], size=1))
    with pytest.raises(ParseMemoryError):
        _parse(pdf, ParseSettings(mode="cpu", memory_mb=128))
    assert _parse(PDFS / "sample-trivial-pdflatex-1page.pdf").pages == 1


def test_cpu_parser_works_from_an_event_loop_in_another_thread() -> None:
    # Ray runs an async actor's event loop in a thread of its own, not the main thread
    results: list[ParseResult | BaseException] = []

    def in_thread() -> None:
        try:
            results.append(_parse(PDFS / "sample-trivial-pdflatex-1page.pdf"))
        except BaseException as exc:  # reported below, in the test's thread
            results.append(exc)

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join(timeout=60)
    assert len(results) == 1
    assert isinstance(results[0], ParseResult)
    assert results[0].content_list[0]["text"].startswith("Lorem ipsum")


def test_cancelling_a_parse_kills_its_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = tmp_path / "small.pdf"
    pdf.write_bytes(make_pdf([["hello"]]))
    children: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def recording_spawn(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        children.append(await spawn(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_spawn)

    async def cancel_midway() -> int | None:
        task = asyncio.create_task(CpuParser(ParseSettings(mode="cpu")).parse(pdf))
        while not children:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return children[0].returncode

    assert asyncio.run(cancel_midway()) == -signal.SIGKILL
