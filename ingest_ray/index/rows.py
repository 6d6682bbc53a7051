"""Input checks both backends share: one copy per key within a write, text without control
characters, query vector shape."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ingest_ray.index.base import CandidateRow, Chunk, DocumentChunks, EntityMention, FloatArray
from ingest_ray.index.errors import IndexSchemaError


def dedupe_documents(docs: Sequence[DocumentChunks]) -> list[DocumentChunks]:
    """One entry per (tenant, doc_key), the last one winning: a batch may hold a duplicate
    delivery, and an upsert must not see two source rows for one key."""
    latest: dict[tuple[str, str], DocumentChunks] = {}
    for doc in docs:
        latest.pop((doc.tenant_id, doc.doc_key), None)
        latest[(doc.tenant_id, doc.doc_key)] = doc
    return list(latest.values())


#: control characters other than tab and line ends (a NUL, pdfium's markers)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def plain(text: str) -> str:
    """``text`` with its control characters as spaces. Text out of a PDF may hold a NUL, which
    PostgreSQL's text cannot store (the write fails) and which glues two words into one token
    for full-text search."""
    return _CONTROL.sub(" ", text) if _CONTROL.search(text) else text


def plain_documents(docs: Sequence[DocumentChunks]) -> list[DocumentChunks]:
    """``docs`` with :func:`plain` text, title and section names (the same objects where there
    is nothing to change)."""
    out = []
    for doc in docs:
        texts = [doc.title or ""] + [t for c in doc.chunks for t in (c.text, *c.section_path)]
        if not any(_CONTROL.search(t) for t in texts):
            out.append(doc)
            continue
        chunks = tuple(_plain_chunk(c) for c in doc.chunks)
        title = plain(doc.title) if doc.title is not None else None
        out.append(dataclasses.replace(doc, chunks=chunks, title=title))
    return out


def _plain_chunk(chunk: Chunk) -> Chunk:
    path = tuple(plain(name) for name in chunk.section_path)
    return dataclasses.replace(chunk, text=plain(chunk.text), section_path=path)


def plain_mentions(mentions: Sequence[EntityMention]) -> list[EntityMention]:
    """``mentions`` with :func:`plain` labels."""
    return [
        dataclasses.replace(m, label=plain(m.label)) if m.label and _CONTROL.search(m.label) else m
        for m in mentions
    ]


def dedupe_mentions(mentions: Sequence[EntityMention]) -> list[EntityMention]:
    """One mention per entity id, the first one winning (callers list the strongest first)."""
    seen: dict[str, EntityMention] = {}
    for mention in mentions:
        seen.setdefault(mention.entity_id, mention)
    return list(seen.values())


def check_query_vector(vector: FloatArray, dim: int) -> FloatArray:
    """The query vector as a flat float32 array of the index's dimension."""
    flat = np.asarray(vector, dtype=np.float32).reshape(-1)
    if flat.shape[0] != dim:
        raise IndexSchemaError(f"query vector of dim {flat.shape[0]}, index expects {dim}")
    return flat


def candidates(rows: Sequence[Mapping[str, Any]]) -> list[CandidateRow]:
    """Search-leg rows (dicts with the chunk columns) as :class:`CandidateRow`."""
    return [
        CandidateRow(
            tenant_id=row["tenant_id"],
            doc_key=row["doc_key"],
            chunk_id=row["chunk_id"],
            text=row["text"] or "",
            title=row["title"],
            doi=row["doi"],
            page_start=row["page_start"],
            page_end=row["page_end"],
            section_path=tuple(row["section_path"] or ()),
        )
        for row in rows
    ]


def check_dims(docs: Sequence[DocumentChunks], dim: int) -> None:
    """Refuse vectors of another dimension before anything is written."""
    for doc in docs:
        if doc.vectors.shape[1] != dim:
            raise IndexSchemaError(
                f"{doc.doc_key}: vectors of dim {doc.vectors.shape[1]}, index expects {dim}"
            )
