from __future__ import annotations

import pytest

from ingest_ray.index.base import CandidateRow
from ingest_ray.index.fusion import fuse_hits, reciprocal_rank_fusion, snippet


def _row(doc: str, chunk: str = "c0", text: str = "text") -> CandidateRow:
    return CandidateRow("t", doc, chunk, text, f"title {doc}", None, 1, 2, ("A", "B"))


def test_rrf_item_in_both_lists_beats_top_of_one() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "d"]], k=60)
    assert [item for item, _ in fused] == ["c", "b", "a", "d"]
    scores = dict(fused)
    assert scores["b"] == pytest.approx(2 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["b"] > scores["a"] and scores["c"] > scores["a"]


def test_rrf_counts_an_item_once_per_list() -> None:
    scores = dict(reciprocal_rank_fusion([["a", "a", "b"]], k=1))
    assert scores == {"a": pytest.approx(1 / 2), "b": pytest.approx(1 / 4)}


def test_rrf_order_is_best_first_and_stable_on_ties() -> None:
    fused = reciprocal_rank_fusion([["x", "y"], ["y", "x"]], k=10)
    assert [item for item, _ in fused] == ["x", "y"]
    assert fused[0][1] == pytest.approx(fused[1][1])


def test_rrf_rejects_bad_k() -> None:
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=0)


def test_fuse_hits_keeps_ranks_and_limits_to_k() -> None:
    vector = [_row("a"), _row("b"), _row("c")]
    text = [_row("b"), _row("d")]
    hits = fuse_hits(vector, text, query_text="q", k=2, rrf_k=60)
    assert [(h.doc_key, h.vector_rank, h.text_rank) for h in hits] == [
        ("b", 2, 1),
        ("a", 1, None),
    ]
    assert hits[0].title == "title b" and hits[0].section_path == ["A", "B"]


def test_snippet_centres_on_a_query_word() -> None:
    text = "lorem ipsum " * 40 + "the elusive quokka appears here " + "dolor sit " * 40
    out = snippet(text, "Quokka sightings", width=80)
    assert "quokka" in out
    assert out.startswith("…") and out.endswith("…")
    assert len(out) <= 82


def test_snippet_short_text_is_whole_and_flattened() -> None:
    assert snippet("a\n\n  short   text", "zzz") == "a short text"
