"""Reciprocal-rank fusion of the vector and full-text legs, and query snippets.

RRF (Cormack et al., 2009) needs no score calibration between legs: each list contributes
``1 / (k + rank)`` per item, so a chunk near the top of both lists wins. Both backends share this
code, so their hybrid results are ranked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from typing import TypeVar

from ingest_ray.index.base import CandidateRow, SearchHit

K = TypeVar("K", bound=Hashable)

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_SNIPPET_CHARS = 240


def reciprocal_rank_fusion(rankings: Sequence[Sequence[K]], k: int = 60) -> list[tuple[K, float]]:
    """Fuse ranked lists (best first) into one, best first; ties keep first-seen order."""
    if k < 1:
        raise ValueError("rrf k must be >= 1")
    scores: dict[K, float] = {}
    for ranking in rankings:
        seen: set[K] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:  # a list counts each item once, at its best rank
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def snippet(text: str, query: str, width: int = _SNIPPET_CHARS) -> str:
    """A window of ``text`` around the first query word it contains (its start if none)."""
    flat = _SPACE.sub(" ", text).strip()
    if len(flat) <= width:
        return flat
    lowered = flat.lower()
    positions = [
        pos
        for word in _WORD.findall(query.lower())
        if len(word) > 2 and (pos := lowered.find(word)) >= 0
    ]
    start = max(0, min(positions) - width // 4) if positions else 0
    start = min(start, len(flat) - width)
    if start > 0:  # begin on a word boundary
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    window = flat[start : start + width].rstrip()
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(flat) else ""
    return f"{prefix}{window}{suffix}"


def fuse_hits(
    vector_rows: Sequence[CandidateRow],
    text_rows: Sequence[CandidateRow],
    *,
    query_text: str,
    k: int,
    rrf_k: int,
) -> list[SearchHit]:
    """Turn the two legs' rows (each best first) into the top ``k`` fused hits."""
    rows = {row.key: row for row in (*text_rows, *vector_rows)}
    vector_rank = _ranks(vector_rows)
    text_rank = _ranks(text_rows)
    fused = reciprocal_rank_fusion(
        [[row.key for row in vector_rows], [row.key for row in text_rows]], k=rrf_k
    )
    hits = []
    for key, score in fused[:k]:
        row = rows[key]
        hits.append(
            SearchHit(
                tenant_id=row.tenant_id,
                doc_key=row.doc_key,
                chunk_id=row.chunk_id,
                title=row.title,
                doi=row.doi,
                page_start=row.page_start,
                page_end=row.page_end,
                section_path=list(row.section_path),
                snippet=snippet(row.text, query_text),
                score=score,
                vector_rank=vector_rank.get(key),
                text_rank=text_rank.get(key),
            )
        )
    return hits


def _ranks(rows: Sequence[CandidateRow]) -> dict[tuple[str, str, str], int]:
    ranks: dict[tuple[str, str, str], int] = {}
    for rank, row in enumerate(rows, start=1):
        ranks.setdefault(row.key, rank)
    return ranks
