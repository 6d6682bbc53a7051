from __future__ import annotations

import itertools
from typing import Any

from ingest_ray.text.chunker import Chunker, build_sections
from ingest_ray.text.content import ContentItem
from ingest_ray.text.tokenizer import ModelTokenizer


def _sentences(topic: str, n: int) -> str:
    return " ".join(f"Sentence {i} reports a finding about {topic} in detail." for i in range(n))


def _paper() -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": "Folding Proteins Fast", "text_level": 1, "page_idx": 0},
        {"type": "text", "text": "An opening paragraph.", "page_idx": 0},
        {"type": "text", "text": "1 Introduction", "text_level": 1, "page_idx": 0},
        {"type": "text", "text": "1.1 Background", "text_level": 2, "page_idx": 1},
        {"type": "text", "text": _sentences("kinetics", 6), "page_idx": 1},
        {"type": "text", "text": _sentences("solvents", 6), "page_idx": 2},
        {"type": "image", "img_path": "images/fig1.jpg", "page_idx": 2},
        {"type": "text", "text": "1.2 Related work", "text_level": 2, "page_idx": 3},
        {
            "type": "table",
            "table_body": "<table><tr><td>k</td><td>0.5</td></tr></table>",
            "page_idx": 3,
        },
        {"type": "equation", "text": "$$k = A e^{-E/RT}$$", "page_idx": 3},
        {"type": "text", "text": "2 Methods", "text_level": 1, "page_idx": 4},
        {"type": "text", "text": "We measured things.", "page_idx": 4},
    ]


def test_chunker_headings_start_new_chunks(small_chunker: Chunker) -> None:
    chunks = small_chunker.chunk_items(_paper())
    starts = [c.text.split("\n")[0] for c in chunks]
    for heading in ("Folding Proteins Fast", "1.2 Related work", "2 Methods"):
        assert heading in starts
    # no chunk mixes the body of two sections
    assert not any("opening paragraph" in c.text and "Sentence" in c.text for c in chunks)


def test_chunker_section_path_replaces_from_heading_level(small_chunker: Chunker) -> None:
    chunks = small_chunker.chunk_items(_paper())
    paths = [c.section_path for c in chunks]
    assert paths[0] == ("Folding Proteins Fast",)
    assert ("1 Introduction", "1.1 Background") in paths
    assert ("1 Introduction", "1.2 Related work") in paths
    assert paths[-1] == ("2 Methods",)
    assert all(p != ("Folding Proteins Fast", "1 Introduction") for p in paths)


def test_chunker_heading_runs_carry_into_the_next_section(small_chunker: Chunker) -> None:
    chunks = small_chunker.chunk_items(_paper())
    background = next(c for c in chunks if c.section_path[-1] == "1.1 Background")
    assert background.text.startswith("1 Introduction\n\n1.1 Background\n\nSentence 0")


def test_chunker_pages_are_one_based_ranges(small_chunker: Chunker) -> None:
    chunks = small_chunker.chunk_items(_paper())
    assert (chunks[0].page_start, chunks[0].page_end) == (1, 1)
    background = [c for c in chunks if c.section_path == ("1 Introduction", "1.1 Background")]
    assert background[0].page_start == 1  # the "1 Introduction" heading is on page_idx 0
    assert any(c.page_start == 2 and c.page_end == 3 for c in background)  # spans the page break
    assert background[-1].page_end == 3
    assert all(c.page_start <= c.page_end for c in chunks)  # type: ignore[operator]
    assert chunks[-1].page_start == chunks[-1].page_end == 5


def test_chunker_skips_items_without_text_and_keeps_tables_and_equations(
    small_chunker: Chunker,
) -> None:
    text = "\n".join(c.text for c in small_chunker.chunk_items(_paper()))
    assert "fig1" not in text
    assert "k | 0.5" in text
    assert "$$k = A e^{-E/RT}$$" in text


def test_chunker_respects_token_bound_of_real_tokenizer(
    small_chunker: Chunker, tokenizer: ModelTokenizer
) -> None:
    items = [
        {"type": "text", "text": _sentences("enzymes", 30), "page_idx": 0},
        {"type": "text", "text": "ACGT" * 300, "page_idx": 0},  # one huge "word"
        {"type": "text", "text": "https://example.org/" + "a/b-c_d" * 60, "page_idx": 1},
    ]
    chunks = small_chunker.chunk_items(items)
    assert len(chunks) > 10
    for chunk in chunks:
        assert chunk.token_count == tokenizer.count(chunk.text)
        assert 0 < chunk.token_count <= 40


def test_chunker_default_bound_fits_the_model_with_special_tokens(
    tokenizer: ModelTokenizer,
) -> None:
    chunker = Chunker(tokenizer, max_tokens=1000, overlap_tokens=32)
    assert chunker.max_tokens == 254  # clamped to 256 - [CLS] - [SEP]
    chunks = chunker.chunk_text(_sentences("catalysis", 200))
    assert max(c.token_count for c in chunks) + tokenizer.special_tokens <= 256


def test_chunker_consecutive_chunks_of_a_section_overlap(small_chunker: Chunker) -> None:
    text = _sentences("membranes", 20)
    spans = small_chunker.split(text)
    assert len(spans) > 3
    for (_, end), (begin, _) in itertools.pairwise(spans):
        assert begin < end  # the next chunk starts inside the previous one
    chunks = small_chunker.chunk_text(text)
    for previous, current in itertools.pairwise(chunks):
        assert current.text[:20] in previous.text


def test_chunker_without_overlap_does_not_repeat_text(tokenizer: ModelTokenizer) -> None:
    chunker = Chunker(tokenizer, max_tokens=40, overlap_tokens=0)
    spans = chunker.split(_sentences("membranes", 20))
    for (_, end), (begin, _) in itertools.pairwise(spans):
        assert begin >= end


def test_chunker_overlap_stays_within_its_section(small_chunker: Chunker) -> None:
    items = [
        {"type": "text", "text": "A", "text_level": 1},
        {"type": "text", "text": _sentences("alpha", 8)},
        {"type": "text", "text": "B", "text_level": 1},
        {"type": "text", "text": _sentences("beta", 8)},
    ]
    for chunk in small_chunker.chunk_items(items):
        topic = "alpha" if chunk.section_path == ("A",) else "beta"
        other = "beta" if topic == "alpha" else "alpha"
        assert other not in chunk.text


def test_chunker_empty_input_gives_no_chunks(small_chunker: Chunker) -> None:
    assert small_chunker.chunk_items([]) == []
    assert small_chunker.chunk_items([{"type": "image", "img_path": "x.jpg"}]) == []
    assert small_chunker.chunk_text("   \n\n ") == []
    assert small_chunker.chunk_abstract(None, None) == []


def test_chunker_chunk_ids_are_sequential_and_deterministic(small_chunker: Chunker) -> None:
    first = small_chunker.chunk_items(_paper())
    assert [c.chunk_id for c in first] == [f"c{i:04d}" for i in range(len(first))]
    assert small_chunker.chunk_items(_paper()) == first


def test_chunker_text_source_has_no_pages_and_markdown_sections(small_chunker: Chunker) -> None:
    text = "Preface words.\n\n# Part One\n\n" + _sentences("lipids", 8) + "\n\n## Detail\n\nEnd."
    chunks = small_chunker.chunk_text(text)
    assert chunks[0].section_path == ()
    assert chunks[0].text == "Preface words."
    assert ("Part One",) in [c.section_path for c in chunks]
    assert chunks[-1].section_path == ("Part One", "Detail")
    assert all(c.page_start is None and c.page_end is None for c in chunks)


def test_chunker_abstract_path_puts_title_first(small_chunker: Chunker) -> None:
    chunks = small_chunker.chunk_abstract("Fast Folding", _sentences("folding", 6))
    assert chunks[0].text.startswith("Fast Folding\n\nSentence 0")
    assert all(c.section_path == ("Fast Folding",) for c in chunks)
    assert small_chunker.chunk_abstract("Only A Title", None)[0].text == "Only A Title"


def test_build_sections_heading_level_deeper_than_path() -> None:
    items = [
        ContentItem(text="Top", text_level=1),
        ContentItem(text="Deep", text_level=3),
        ContentItem(text="body"),
        ContentItem(text="Second", text_level=2),
        ContentItem(text="body two"),
    ]
    assert [s.path for s in build_sections(items)] == [("Top", "Deep"), ("Top", "Second")]
