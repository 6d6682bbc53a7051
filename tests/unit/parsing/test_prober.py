"""The long-lived sandboxed prober, and the probe ahead of the parser: ``pdf_fetch`` probes what it
stored (on a CPU pool) and the MinerU parsers skip their own probe for a known page count."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.fetch import FetchSettings
from ingest_ray.parsing import planned
from ingest_ray.parsing.batching import Piece, PieceResult
from ingest_ray.parsing.errors import (
    EncryptedPdfError,
    MissingPdfError,
    ParseError,
    ParseMemoryError,
    ParserCrashedError,
    ParseTimeoutError,
    TooManyPagesError,
)
from ingest_ray.parsing.planned import parse_planned
from ingest_ray.parsing.sandbox import ProbeChild, Prober, SandboxAnswer
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import StageInput
from ingest_ray.stages.factories import probes_ahead
from ingest_ray.stages.mineru import MineruStage
from ingest_ray.stages.pdf_fetch import PdfFetchStage
from ingest_ray.storage import FileBlobStore
from tests.conftest import FIXTURES

PDFS = FIXTURES / "pdfs"
TRIVIAL = PDFS / "sample-trivial-pdflatex-1page.pdf"
DAMAGED = PDFS / "sample-unreadable-metadata-4pages.pdf"
ENCRYPTED = PDFS / "sample-libreoffice-password-encrypted.pdf"
CPU = ParseSettings(mode="cpu")


def _probe_all(prober: Prober | ProbeChild, pdfs: list[Path]) -> list[SandboxAnswer | ParseError]:
    async def main() -> list[SandboxAnswer | ParseError]:
        out: list[SandboxAnswer | ParseError] = []
        try:
            for pdf in pdfs:
                try:
                    out.append(await prober.probe(pdf))
                except ParseError as exc:
                    out.append(exc)
        finally:
            await prober.aclose()
        return out

    return asyncio.run(main())


def test_the_prober_answers_what_a_child_per_pdf_would_in_one_child() -> None:
    prober = Prober(CPU)
    answers = _probe_all(prober, [TRIVIAL, DAMAGED, ENCRYPTED, TRIVIAL])
    good, damaged, encrypted, again = answers
    assert isinstance(good, SandboxAnswer) and (good.pages, good.repaired) == (1, False)
    assert isinstance(damaged, SandboxAnswer) and damaged.repaired and damaged.pages >= 1
    assert isinstance(encrypted, EncryptedPdfError)
    assert again == good  # an unusable PDF does not end the child's service


def test_a_slow_probe_holds_up_only_its_own_child() -> None:
    finished: list[str] = []

    async def one(prober: Prober, pdf: Path) -> None:
        await prober.probe(pdf)
        finished.append(pdf.name)

    async def main(children: int) -> list[str]:
        prober = Prober(CPU, children=children)
        finished.clear()
        # the damaged PDF is rebuilt (~0.3 CPU s), the sound one answers in milliseconds
        await asyncio.gather(one(prober, DAMAGED), one(prober, TRIVIAL))
        await prober.aclose()
        return list(finished)

    assert asyncio.run(main(2)) == [TRIVIAL.name, DAMAGED.name]
    assert asyncio.run(main(1)) == [DAMAGED.name, TRIVIAL.name]  # one child: in turn
    with pytest.raises(ValueError, match="at least one child"):
        Prober(CPU, children=0)


def test_the_prober_refuses_too_long_and_non_pdf_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"this is not a PDF at all")
    short = ParseSettings(mode="cpu", max_pages=2)
    long_pdf = PDFS / "sample-pdflatex-4pages.pdf"
    too_long, not_pdf = _probe_all(Prober(short), [long_pdf, junk])
    assert isinstance(too_long, TooManyPagesError) and "4 pages" in str(too_long)
    assert isinstance(not_pdf, ParseError) and not isinstance(not_pdf, TooManyPagesError)


def test_the_prober_starts_a_fresh_child_after_max_probes() -> None:
    prober = ProbeChild(CPU, max_probes=2)
    pids: list[int] = []

    async def main() -> None:
        for _ in range(5):
            await prober.probe(TRIVIAL)
            pids.append(prober._proc.pid if prober._proc else 0)
        await prober.aclose()

    asyncio.run(main())
    # children of two probes each: the second probe of a child stops it (no pid after it)
    assert pids[1] == 0 and pids[3] == 0
    assert pids[0] != pids[2] != pids[4] and 0 not in (pids[0], pids[2], pids[4])


def test_a_child_killed_between_probes_is_replaced_and_one_killed_in_a_probe_fails_it() -> None:
    prober = ProbeChild(CPU)

    async def main() -> tuple[SandboxAnswer, ParseError | SandboxAnswer, SandboxAnswer]:
        await prober.probe(TRIVIAL)
        assert prober._proc is not None
        first = prober._proc.pid
        os.killpg(first, signal.SIGKILL)
        await prober._proc.wait()  # the death is seen before the next probe
        after = await prober.probe(TRIVIAL)  # a fresh child; the probe does not pay for it
        assert prober._proc is not None and prober._proc.pid != first
        # a child that dies while it works on a probe (the repair takes ~0.3 CPU s, the kill
        # comes as soon as the request is written): that probe fails as a crash
        asyncio.get_running_loop().call_soon(os.killpg, prober._proc.pid, signal.SIGKILL)
        try:
            crashed: ParseError | SandboxAnswer = await prober.probe(DAMAGED)
        except ParseError as exc:
            crashed = exc
        then = await prober.probe(TRIVIAL)
        await prober.aclose()
        return after, crashed, then

    after, crashed, then = asyncio.run(main())
    assert after.pages == 1 and then.pages == 1
    assert isinstance(crashed, ParserCrashedError) and "SIGKILL" in str(crashed)


def test_a_child_out_of_memory_answers_so_and_the_next_probe_gets_a_fresh_one() -> None:
    # under a 1 MiB address space pdfium cannot even load: the child answers "memory" and stops
    prober = ProbeChild(ParseSettings(mode="cpu", memory_mb=1))
    answers = _probe_all(prober, [TRIVIAL, TRIVIAL])
    assert all(isinstance(a, ParseMemoryError) for a in answers), answers


def test_a_probe_out_of_time_kills_the_child_and_says_so() -> None:
    prober = ProbeChild(ParseSettings(mode="cpu", timeout_s=0.01))
    (late,) = _probe_all(prober, [TRIVIAL])
    assert isinstance(late, ParseTimeoutError) and "killed" in str(late)
    assert prober._proc is None


# --- ahead of the parser -------------------------------------------------------------------


def test_pdf_fetch_probes_ahead_of_an_accelerator_or_of_mineru_but_not_of_the_cpu_parser() -> None:
    fetch, cpu = FetchSettings(), ParseSettings(mode="cpu")
    assert probes_ahead(Settings(mineru_resource="accel"), fetch, cpu)
    assert probes_ahead(Settings(mineru_num_gpus=1), fetch, cpu)
    assert not probes_ahead(Settings(), fetch, cpu)
    api = ParseSettings(mode="auto", mineru_urls=["http://127.0.0.1:1"])
    assert probes_ahead(Settings(), fetch, api)
    assert not probes_ahead(Settings(), FetchSettings(probe_pdfs=False), api)
    assert probes_ahead(Settings(), FetchSettings(probe_pdfs=True), cpu)
    # a parse mode that cannot work is the mineru stage's error to report, not pdf_fetch's
    assert not probes_ahead(Settings(), fetch, ParseSettings(mode="api"))


def _fetch(stage: PdfFetchStage, path: Path) -> dict[str, Any] | ParseError:
    source = DocumentSource(kind=SourceKind.PDF_PATH, value=str(path))
    item = StageInput("j", "t", source.doc_key(), "two_phase", "pdf_fetch", 1, source)

    async def main() -> dict[str, Any] | ParseError:
        try:
            return (await stage.run(item)).data
        except ParseError as exc:
            return exc
        finally:
            await stage.aclose()

    return asyncio.run(main())


def _stage(tmp_path: Path) -> PdfFetchStage:
    blobs = FileBlobStore(tmp_path / "blobs")
    return PdfFetchStage.from_settings(
        AdapterSettings(), FetchSettings(offline=True), blobs, prober=Prober(CPU)
    )


def test_pdf_fetch_with_a_prober_hands_on_the_page_count(tmp_path: Path) -> None:
    data = _fetch(_stage(tmp_path), DAMAGED)
    assert isinstance(data, dict)
    assert data["pdf_repaired"] is True and data["pdf_pages"] >= 1
    assert data["pdf_size"] == DAMAGED.stat().st_size


def test_an_encrypted_pdf_fails_at_pdf_fetch_with_the_parsers_reason(tmp_path: Path) -> None:
    error = _fetch(_stage(tmp_path), ENCRYPTED)
    assert isinstance(error, EncryptedPdfError)
    assert error.stage == "pdf_fetch" and error.job_id == "j" and not error.retryable


def _echo(request: list[Piece]) -> Any:
    async def send() -> list[PieceResult]:
        return [
            PieceResult(p, [{"type": "text", "text": "x", "page_idx": p.start}]) for p in request
        ]

    return send()


def _no_children(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []

    async def child(op: str, *args: Any, **kwargs: Any) -> SandboxAnswer:
        ran.append(op)
        return SandboxAnswer(pages=1, items=None, repaired=False)

    monkeypatch.setattr(planned, "run_sandboxed", child)
    return ran


def test_the_planner_skips_its_probe_for_a_known_page_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran = _no_children(monkeypatch)
    settings = ParseSettings(mode="cpu", mineru_split_pages=4, max_pages=10)
    pdfs = [TRIVIAL, TRIVIAL, TRIVIAL]
    results = asyncio.run(
        parse_planned(pdfs, settings, _echo, split_files=False, pages=[3, None, 11])
    )
    three, probed, too_long = results
    assert ran == ["probe"]  # only the one whose count nobody knew
    assert isinstance(three, planned.Parsed) and three.pages == 3
    assert isinstance(probed, planned.Parsed) and probed.pages == 1
    assert isinstance(too_long, TooManyPagesError)


def test_the_planner_still_cuts_a_long_known_pdf_into_files_for_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran = _no_children(monkeypatch)
    settings = ParseSettings(mode="cpu", mineru_split_pages=4)
    asyncio.run(parse_planned([TRIVIAL, TRIVIAL], settings, _echo, split_files=True, pages=[9, 2]))
    assert ran == ["split"]  # the 9-page one is cut; the 2-page one goes whole, unprobed


def test_the_mineru_stage_passes_on_what_pdf_fetch_counted(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Recorder:
        name = "mineru"

        async def parse_many(self, pdfs: Any, pages: Any = None) -> list[Any]:
            seen.append(list(pages))
            return [MissingPdfError("recorded only") for _ in pdfs]

        async def parse(self, pdf: Path) -> Any:
            raise AssertionError

        async def aclose(self) -> None:
            return None

    blobs = FileBlobStore(tmp_path / "blobs")
    digest = blobs.put(TRIVIAL.read_bytes())
    source = DocumentSource(kind=SourceKind.PDF_PATH, value=str(TRIVIAL))
    items = [
        StageInput("j1", "t", source.doc_key(), "two_phase", "mineru", 1, source,
                   outputs={"pdf_fetch": {"pdf_sha256": digest, "pdf_pages": 7}}),
        StageInput("j2", "t", source.doc_key(), "two_phase", "mineru", 1, source,
                   outputs={"pdf_fetch": {"pdf_sha256": digest}}),
    ]  # fmt: skip
    stage = MineruStage(CPU, blobs, parser=Recorder())  # type: ignore[arg-type]
    asyncio.run(stage.run_batch(items))
    assert seen == [[7, None]]
