"""Chunking of MinerU's real output format: the content list MinerU 4.0.12 renders from the
hand-written middle JSON fixture (tests/fixtures/mineru), and ours from the same middle JSON.
Tables and equations stay whole, running headers, footers and page numbers are dropped, section
paths and page numbers are kept - whichever parser wrote the list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.parsing.middle import content_list_from_middle
from ingest_ray.text.chunker import Chunk, Chunker
from ingest_ray.text.tokenizer import ModelTokenizer

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "mineru"
LATEX = r"k_f = A \exp\left(-\frac{E_a}{R T}\right)"


def _load(name: str) -> Any:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


@pytest.fixture(params=["mineru", "ours"])
def content(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    if request.param == "mineru":
        return _load("content_list.json")  # type: ignore[no-any-return]
    return content_list_from_middle(_load("middle.json"))


@pytest.fixture
def chunker(tokenizer: ModelTokenizer) -> Chunker:
    """Chunks smaller than a section (the Methods section has to be split) and larger than
    the table (80 wordpieces with caption and footnote)."""
    return Chunker(tokenizer, max_tokens=96, overlap_tokens=8)


def _chunks(chunker: Chunker, content: list[dict[str, Any]]) -> list[Chunk]:
    return chunker.chunk_content_list(content)


def test_tables_stay_whole_in_one_chunk(chunker: Chunker, content: list[dict[str, Any]]) -> None:
    chunks = _chunks(chunker, content)
    methods = [c for c in chunks if c.section_path[-1:] == ("2.1 Kinetics",)]
    assert len(methods) >= 2  # the section is longer than a chunk
    rows = ["Villin headpiece | 35 | 2.1e5", "Trp-cage | 20 | 2.4e5", "Protein G | 56 | 7.5e2"]
    holding = [c for c in chunks if any(row in c.text for row in rows)]
    assert len(holding) == 1, [c.text for c in holding]
    table = holding[0]
    assert all(row in table.text for row in rows)
    assert "Table 1. Folding rates" in table.text and "phosphate buffer" in table.text
    assert (table.page_start, table.page_end) == (2, 2)


def test_equations_stay_whole(chunker: Chunker, content: list[dict[str, Any]]) -> None:
    chunks = _chunks(chunker, content)
    holding = [c for c in chunks if "exp" in c.text and "frac" in c.text]
    assert holding and all(LATEX in c.text for c in holding)
    assert all(c.page_start == 2 for c in holding)


@pytest.mark.parametrize("max_tokens", [40, 48, 56, 64])
def test_equations_stay_whole_in_small_chunks(
    tokenizer: ModelTokenizer, content: list[dict[str, Any]], max_tokens: int
) -> None:
    small = Chunker(tokenizer, max_tokens=max_tokens, overlap_tokens=8)
    holding = [c for c in small.chunk_content_list(content) if "frac" in c.text or "exp" in c.text]
    assert holding and all(LATEX in c.text for c in holding)


def test_running_headers_footers_and_page_numbers_are_dropped(
    chunker: Chunker, content: list[dict[str, Any]]
) -> None:
    text = "\n".join(c.text for c in _chunks(chunker, content))
    assert "Journal of Test Science" not in text
    assert "Published under CC BY" not in text
    assert not any(c.text.strip() in {"101", "102", "103"} for c in _chunks(chunker, content))
    assert "Corresponding author" in text  # a page footnote is content, not furniture


def test_section_paths_and_pages_are_kept(chunker: Chunker, content: list[dict[str, Any]]) -> None:
    chunks = _chunks(chunker, content)
    title = "Fast Folding of Small Proteins"
    where = {c.section_path: (c.page_start, c.page_end) for c in chunks}
    assert where[(title, "Abstract")] == (1, 1)
    assert where[(title, "2 Methods", "2.1 Kinetics")][0] == 2
    assert where[(title, "3 Results")] == (3, 3)
    assert (title, "References") in where
    figure = next(c for c in chunks if "Arrhenius plot" in c.text)
    assert figure.section_path == (title, "3 Results") and figure.page_start == 3
    refs = next(c for c in chunks if "Folding speed limits" in c.text)
    assert "Transition states" in refs.text and refs.section_path == (title, "References")


def test_a_table_longer_than_a_chunk_is_split_at_row_boundaries(
    tokenizer: ModelTokenizer, content: list[dict[str, Any]]
) -> None:
    tiny = Chunker(tokenizer, max_tokens=24, overlap_tokens=0)
    pieces = [c.text for c in tiny.chunk_content_list(content) if "|" in c.text]
    assert len(pieces) > 1
    rows = [line for piece in pieces for line in piece.split("\n") if "|" in line]
    for row in ("Villin headpiece | 35 | 2.1e5", "WW domain | 34 | 1.3e4"):
        assert row in rows  # never cut inside a row
