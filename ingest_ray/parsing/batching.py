"""How documents are cut and packed for MinerU, and put back together. Pure: no I/O, no clock.

A GPU parser runs fastest on a steady stream of pages, not on one small document at a time:

* a document longer than ``split_pages`` is cut into page ranges (:func:`split_ranges`), so
  its ranges can run at the same time on different servers (or GPU slots);
* pieces are packed into requests of at most ``budget`` pages and ``max_files`` files
  (:func:`pack`): small documents travel together, two ranges of one document never share a
  request (they would run one after the other on the server);
* the pieces' content lists are merged back in page order (:func:`merge`), each range's
  ``page_idx`` moved by the range's first page, and the pages of a failed range recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest_ray.parsing.content import ContentItem


@dataclass(frozen=True, slots=True)
class Piece:
    """Pages ``[start, end)`` of document ``doc``. ``whole``: ``path`` is the whole document
    (a parser that takes a page range reads just these pages, and answers with the document's
    own page numbers); otherwise ``path`` holds only these pages, numbered from 0."""

    doc: int
    start: int
    end: int
    path: Path
    whole: bool = True
    #: pages of the whole document
    total: int = 0

    @property
    def pages(self) -> int:
        """How many pages this piece has."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class PieceResult:
    """What came back for one piece: its content list (page_idx relative to the piece), or
    the error that failed it."""

    piece: Piece
    items: list[ContentItem] | None = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Merged:
    """One document put back together."""

    items: list[ContentItem]
    failed_pages: tuple[int, ...] = ()
    errors: tuple[Exception, ...] = field(default=())


def split_ranges(pages: int, split_pages: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges covering ``pages`` pages, none longer than ``split_pages``
    (``0`` or a short document: one range). Ranges are balanced: 40 pages by 32 -> 20 + 20."""
    if pages <= 0:
        return [(0, 0)]
    if split_pages <= 0 or pages <= split_pages:
        return [(0, pages)]
    count = -(-pages // split_pages)
    size, extra = divmod(pages, count)
    ranges, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges


def pack(pieces: Sequence[Piece], budget: int, max_files: int) -> list[list[Piece]]:
    """Requests of pieces: first fit, in order, within ``budget`` pages (``0``: one piece per
    request) and ``max_files`` files, never two pieces of one document together. A piece
    larger than the budget goes alone."""
    requests: list[list[Piece]] = []
    loads: list[int] = []
    for piece in pieces:
        if budget > 0:
            for index, request in enumerate(requests):
                fits = loads[index] + piece.pages <= budget and len(request) < max_files
                if fits and all(p.doc != piece.doc for p in request):
                    request.append(piece)
                    loads[index] += piece.pages
                    break
            else:
                requests.append([piece])
                loads.append(piece.pages)
        else:
            requests.append([piece])
            loads.append(piece.pages)
    return requests


def merge(results: Sequence[PieceResult]) -> Merged:
    """One document's pieces back in page order; pages of failed pieces are listed."""
    items: list[ContentItem] = []
    failed: list[int] = []
    errors: list[Exception] = []
    for result in sorted(results, key=lambda r: r.piece.start):
        piece = result.piece
        if result.items is None:
            failed.extend(range(piece.start, piece.end))
            if result.error is not None:
                errors.append(result.error)
            continue
        items.extend(_shifted(item, piece) for item in result.items)
    return Merged(items=items, failed_pages=tuple(failed), errors=tuple(errors))


def _shifted(item: ContentItem, piece: Piece) -> ContentItem:
    if piece.whole or piece.start == 0:
        return item
    page: Any = item.get("page_idx")
    return {**item, "page_idx": page + piece.start} if isinstance(page, int) else item
