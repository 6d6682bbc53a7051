"""Section-aware, token-bounded chunking with overlap (semchunk + the embedding model's tokenizer).

Headings start new sections and set the section path (a heading of level L keeps the first L-1
entries and becomes entry L); a run of headings with no text between them is carried into the
next section, so no chunk is a bare heading unless the document ends with one. Each section is
split by semchunk at the most meaningful boundary that keeps a chunk within ``max_tokens`` of
the model's own wordpieces, consecutive chunks of one section sharing up to ``overlap_tokens``.
Tables, equations and code are never cut: each such block lands whole in one chunk (with the
text around it when that fits), and only one longer than a chunk is split, at its row breaks.
Pages are 1-based (``page_idx + 1``): ``page_start``/``page_end`` span the blocks a chunk covers,
``None`` when the source has no pages.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict
from semchunk.semchunk import chunk as semchunk_chunk

from ingest_ray.text.content import (
    ContentItem,
    abstract_to_items,
    parse_content_list,
    text_to_items,
)
from ingest_ray.text.settings import TextSettings
from ingest_ray.text.tokenizer import ModelTokenizer, load_tokenizer

log = logging.getLogger(__name__)

_SEPARATOR = "\n\n"


class Chunk(BaseModel):
    """One chunk as stored in the chunk list (the ``chunk`` stage's artifact)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_id: str
    text: str
    page_start: int | None
    page_end: int | None
    section_path: tuple[str, ...]
    #: the embedding model's wordpieces, without the special tokens it adds
    token_count: int


@dataclass(slots=True)
class _Section:
    """Blocks under one heading path, before splitting."""

    path: tuple[str, ...]
    texts: list[str] = field(default_factory=list)
    pages: list[int | None] = field(default_factory=list)
    atomic: list[bool] = field(default_factory=list)
    has_body: bool = False

    def add(self, text: str, page: int | None, *, atomic: bool = False) -> None:
        self.texts.append(text)
        self.pages.append(page)
        self.atomic.append(atomic)

    def pages_between(self, starts: Sequence[int], begin: int, end: int) -> list[int]:
        """Known pages of the blocks that the span ``[begin, end)`` of the joined text covers."""
        first, last = _block_at(starts, begin), _block_at(starts, end - 1)
        return [page for page in self.pages[first : last + 1] if page is not None]


def build_sections(items: Sequence[ContentItem]) -> list[_Section]:
    """Group blocks into sections; blocks without text are skipped, headings extend the path."""
    sections: list[_Section] = []
    path: tuple[str, ...] = ()
    current = _Section(path)
    for item in items:
        level = item.heading_level()
        text = item.heading_text() if level is not None else item.body_text()
        if not text:
            continue
        if level is None:
            current.add(text, item.page, atomic=item.atomic)
            current.has_body = True
            continue
        if current.has_body:
            sections.append(current)
            current = _Section(path)
        path = (*path[: level - 1], text)
        current.path = path
        current.add(text, item.page)
    if current.texts:
        sections.append(current)
    return sections


class Chunker:
    """Splits content into :class:`Chunk` s measured by the embedding model's tokenizer."""

    def __init__(self, tokenizer: ModelTokenizer, *, max_tokens: int, overlap_tokens: int) -> None:
        limit = tokenizer.max_content_tokens
        if max_tokens > limit:
            log.warning(
                "chunk_max_tokens %d exceeds the model's limit; using %d", max_tokens, limit
            )
        self.max_tokens = min(max_tokens, limit)
        self.overlap_tokens = max(0, min(overlap_tokens, self.max_tokens - 1))
        self.tokenizer = tokenizer
        # a per-instance memo: semchunk's own memo would be process-global and unbounded
        self._count = lru_cache(maxsize=65536)(tokenizer.count)

    @classmethod
    def from_settings(cls, settings: TextSettings) -> Chunker:
        """A chunker using the tokenizer of ``settings.embedding_model`` (loaded offline)."""
        return cls(
            load_tokenizer(settings.embedding_model),
            max_tokens=settings.chunk_max_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        )

    def chunk_items(self, items: Sequence[ContentItem | Mapping[str, Any]]) -> list[Chunk]:
        """Chunk a MinerU content list (items or their JSON objects)."""
        parsed = [
            item if isinstance(item, ContentItem) else ContentItem.model_validate(item)
            for item in items
        ]
        return self._chunk_sections(build_sections(parsed))

    def chunk_content_list(self, value: Any) -> list[Chunk]:
        """Chunk a content list as loaded from JSON, validating its shape."""
        return self._chunk_sections(build_sections(parse_content_list(value)))

    def chunk_text(self, text: str) -> list[Chunk]:
        """Chunk plain (or Markdown) text; pages are unknown."""
        return self._chunk_sections(build_sections(text_to_items(text)))

    def chunk_abstract(self, title: str | None, abstract: str | None) -> list[Chunk]:
        """Chunk a work's title and abstract (the title becomes the section path)."""
        return self._chunk_sections(build_sections(abstract_to_items(title, abstract)))

    def _chunk_sections(self, sections: Sequence[_Section]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in sections:
            text = _SEPARATOR.join(section.texts)
            starts = _block_starts(section.texts)
            for begin, end in self._section_spans(section, text, starts):
                pages = section.pages_between(starts, begin, end)
                piece = text[begin:end]
                chunks.append(
                    Chunk(
                        chunk_id=f"c{len(chunks):04d}",
                        text=piece,
                        page_start=min(pages) if pages else None,
                        page_end=max(pages) if pages else None,
                        section_path=section.path,
                        token_count=self._count(piece),
                    )
                )
        return chunks

    def _section_spans(
        self, section: _Section, text: str, starts: Sequence[int]
    ) -> list[tuple[int, int]]:
        """Spans of one section: runs of plain blocks split by :meth:`split`, each atomic
        block whole (or, longer than a chunk, split without overlap), then neighbours joined
        where an atomic block and its surroundings fit in one chunk."""
        if not any(section.atomic):
            return self.split(text)
        pieces: list[tuple[int, int, bool]] = []
        for first, last, atomic in _runs(section.atomic):
            begin, end = starts[first], starts[last] + len(section.texts[last])
            body = text[begin:end]
            if atomic and self._count(body) <= self.max_tokens:
                inner = [(0, len(body))]
            else:
                inner = self._semchunk(body, None) if atomic else self.split(body)
            pieces.extend((begin + b, begin + e, atomic) for b, e in inner)
        return self._joined(text, pieces)

    def _joined(self, text: str, pieces: Sequence[tuple[int, int, bool]]) -> list[tuple[int, int]]:
        spans: list[list[Any]] = []
        for begin, end, atomic in pieces:
            if spans:
                last = spans[-1]
                if (
                    (atomic or last[2])
                    and last[1] <= begin
                    and self._count(text[last[0] : end]) <= self.max_tokens
                ):
                    last[1], last[2] = end, True
                    continue
            spans.append([begin, end, atomic])
        return [(begin, end) for begin, end, _ in spans]

    def split(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text``'s chunks, each within ``max_tokens``, overlapping."""
        spans = self._semchunk(text, self.overlap_tokens or None)
        bounded: list[tuple[int, int]] = []
        for begin, end in spans:
            if self._count(text[begin:end]) <= self.max_tokens:
                bounded.append((begin, end))
                continue
            # merged overlap windows can exceed the bound where wordpieces do not add up (words
            # cut mid-way); split such a window again without overlap, which semchunk bounds
            inner = self._semchunk(text[begin:end], None)
            bounded.extend((begin + b, begin + e) for b, e in inner)
        return bounded

    def _semchunk(self, text: str, overlap: int | None) -> list[tuple[int, int]]:
        result = semchunk_chunk(
            text,
            chunk_size=self.max_tokens,
            token_counter=self._count,
            memoize=False,
            offsets=True,
            overlap=overlap,
        )
        if not isinstance(result, tuple):  # offsets=True always returns (chunks, offsets)
            raise TypeError("semchunk returned no offsets")
        return [(int(begin), int(end)) for begin, end in result[1]]


def _runs(flags: Sequence[bool]) -> list[tuple[int, int, bool]]:
    """``(first, last, atomic)`` block index ranges: each atomic block alone, plain ones in
    maximal runs."""
    runs: list[tuple[int, int, bool]] = []
    for index, atomic in enumerate(flags):
        if runs and not atomic and not runs[-1][2]:
            runs[-1] = (runs[-1][0], index, False)
        else:
            runs.append((index, index, atomic))
    return runs


def _block_starts(texts: Sequence[str]) -> list[int]:
    starts, position = [], 0
    for text in texts:
        starts.append(position)
        position += len(text) + len(_SEPARATOR)
    return starts


def _block_at(starts: Sequence[int], offset: int) -> int:
    return max(0, bisect_right(starts, offset) - 1)
