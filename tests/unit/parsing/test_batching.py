"""Cutting, packing and merging for MinerU (pure), and a batch through the planner: a document
that partly failed keeps its pages, a failure that may go away fails the document."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingest_ray.errors import IngestError
from ingest_ray.parsing.batching import Piece, PieceResult, merge, pack, split_ranges
from ingest_ray.parsing.errors import (
    EncryptedPdfError,
    MineruTaskFailedError,
    MineruUnavailableError,
)
from ingest_ray.parsing.planned import Parsed, parse_planned
from ingest_ray.parsing.settings import ParseSettings
from tests.conftest import FIXTURES
from tests.unit.parsing.pdfs import make_pdf

P = Path("x.pdf")


@pytest.mark.parametrize(
    ("pages", "split", "expected"),
    [
        (10, 0, [(0, 10)]),
        (10, 32, [(0, 10)]),
        (32, 32, [(0, 32)]),
        (40, 32, [(0, 20), (20, 40)]),
        (65, 32, [(0, 22), (22, 44), (44, 65)]),
        (0, 8, [(0, 0)]),
    ],
)
def test_split_ranges_cover_the_document_in_balanced_ranges(
    pages: int, split: int, expected: list[tuple[int, int]]
) -> None:
    ranges = split_ranges(pages, split)
    assert ranges == expected
    assert all(b - a <= max(split, pages) for a, b in ranges)


def test_pack_fills_requests_up_to_the_page_budget() -> None:
    pieces = [Piece(i, 0, n, P) for i, n in enumerate([10, 30, 25, 5, 70, 1])]
    requests = pack(pieces, budget=64, max_files=16)
    assert [[p.doc for p in r] for r in requests] == [[0, 1, 3, 5], [2], [4]]
    assert all(sum(p.pages for p in r) <= 64 for r in requests if len(r) > 1)


def test_pack_never_puts_two_ranges_of_one_document_together() -> None:
    ranges = [Piece(0, a, b, P, whole=False) for a, b in split_ranges(64, 16)]
    requests = pack([*ranges, Piece(1, 0, 3, P)], budget=128, max_files=16)
    assert len(requests) == 4
    assert all(len({p.doc for p in r}) == len(r) for r in requests)


def test_pack_respects_the_file_cap_and_budget_zero() -> None:
    pieces = [Piece(i, 0, 1, P) for i in range(7)]
    assert [len(r) for r in pack(pieces, budget=64, max_files=3)] == [3, 3, 1]
    assert [len(r) for r in pack(pieces, budget=0, max_files=3)] == [1] * 7


def test_merge_restores_page_order_and_lists_failed_pages() -> None:
    def text(page: int) -> dict[str, object]:
        return {"type": "text", "text": f"p{page}", "page_idx": page}

    first = Piece(0, 0, 2, P, whole=False)
    second = Piece(0, 2, 4, P, whole=False)
    third = Piece(0, 4, 6, P, whole=False)
    merged = merge(
        [
            PieceResult(third, [text(0), text(1)]),
            PieceResult(first, [text(0), text(1)]),
            PieceResult(second, error=MineruTaskFailedError("bad pages")),
        ]
    )
    assert [i["page_idx"] for i in merged.items] == [0, 1, 4, 5]
    assert merged.failed_pages == (2, 3)
    whole = Piece(0, 4, 6, P, whole=True)  # MinerU numbered these pages itself
    assert merge([PieceResult(whole, [text(4)])]).items == [text(4)]


def _planned(
    settings: ParseSettings, pdfs: list[Path], fail: dict[int, IngestError]
) -> list[object]:
    sent: list[list[Piece]] = []

    async def send(request: list[Piece]) -> list[PieceResult]:
        sent.append(request)
        return [
            PieceResult(p, error=fail[p.start])
            if p.start in fail
            else PieceResult(p, [{"type": "text", "text": f"{p.start}", "page_idx": 0}])
            for p in request
        ]

    results = asyncio.run(parse_planned(pdfs, settings, send, split_files=True))
    return [*results, sent]


@pytest.fixture
def long_pdf(tmp_path: Path) -> Path:
    path = tmp_path / "long.pdf"
    path.write_bytes(make_pdf([[f"page {i}"] for i in range(12)]))
    return path


def test_planner_keeps_a_partly_failed_document_without_its_failed_pages(long_pdf: Path) -> None:
    settings = ParseSettings(mineru_split_pages=4)
    parsed, sent = _planned(settings, [long_pdf], {4: MineruTaskFailedError("cannot")})
    assert isinstance(parsed, Parsed)
    assert parsed.failed_pages == (4, 5, 6, 7) and parsed.pages == 12
    assert [i["page_idx"] for i in parsed.content_list] == [0, 8]  # shifted by range start
    assert len(sent) == 3  # three ranges, three requests (never together)  # type: ignore[arg-type]


def test_planner_fails_a_document_whose_failure_may_go_away(long_pdf: Path) -> None:
    settings = ParseSettings(mineru_split_pages=4)
    parsed, _ = _planned(settings, [long_pdf], {8: MineruUnavailableError("server died")})
    assert isinstance(parsed, MineruUnavailableError) and parsed.retryable


def test_planner_fails_only_the_bad_document_of_a_batch(long_pdf: Path) -> None:
    encrypted = FIXTURES / "pdfs" / "sample-libreoffice-password-encrypted.pdf"
    ok, bad, sent = _planned(ParseSettings(), [long_pdf, encrypted], {})
    assert isinstance(ok, Parsed) and isinstance(bad, EncryptedPdfError)
    assert [[p.doc for p in r] for r in sent] == [[0]]  # type: ignore[union-attr]
