"""From text lines to MinerU's content list: the CPU parser's layout heuristics (no pdfium here).

MinerU finds blocks, titles, tables and formulas with layout models; without them we use plain,
documented heuristics on the lines pdfium gives us (in content-stream order, which for most
generators is reading order, column by column):

* **running headers/footers**: a line in the top or bottom 12% of a page is dropped when it is a
  bare page number, or when its text (digits ignored) recurs in that band on at least half of the
  pages of a document of three or more pages.
* **paragraphs**: consecutive lines on a page join one block while the vertical gap stays under
  ~0.9x the font size, their horizontal extents overlap, and size and boldness do not change; a
  line ending well (4 em) short of the next one, or a first-line indent after a full line, ends
  the paragraph.
* **headings**: a short block (at most 3 lines and 150 characters, or 6 lines and 300 characters
  when set larger) with at least two letters that is either set clearly larger than the body text
  (>= 1.15x the character-weighted median size, at most 40 words), or entirely bold at body size
  (at most 12 words, no final colon), or numbered like ``2.1 Methods`` / ``IV. Results`` (a
  capital letter after the number, at most 12 words, no comma, no final full stop).
  Figure and table captions are never headings. ``text_level`` is the numbering depth for
  numbered headings, otherwise the rank of the heading's size among all heading sizes (largest
  is 1). Headings carry ``text_level``; body text carries none, as in MinerU.

Items follow MinerU's content-list format: ``{"type": "text", "text", "page_idx", "bbox"}`` (plus
``"text_level"`` on headings) and ``{"type": "image", "img_caption": [], "img_footnote": [],
"page_idx", "bbox"}``; ``bbox`` is ``[x0, y0, x1, y1]`` in PDF points with the origin at the top
left of the page. Tables and formulas are not recognised: their text comes out as text blocks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

Box = tuple[float, float, float, float]

#: Ends a line where pdfium removed a hyphen at a line break (the word continues on the next line).
HYPHEN_MARK = "\x02"

_MARGIN = 0.12
_NUMBERED = re.compile(r"^(?:(\d{1,2}(?:\.\d{1,2}){0,4})\.?|([IVXLC]{1,6})\.)\s+\S")
_CAPTION = re.compile(r"^(?:fig(?:ure)?|table|tab|scheme|plate)\.?\s*[0-9IVX]", re.IGNORECASE)
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?[#ivxlc]+(?:\s*(?:of|/)\s*#)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Line:
    """One visual line of text: ``bbox`` top-left origin, ``size`` the median font size."""

    page_idx: int
    text: str
    bbox: Box
    size: float
    bold: bool


@dataclass(frozen=True, slots=True)
class Page:
    """What the layout needs to know about a page besides its lines."""

    width: float
    height: float
    images: tuple[Box, ...] = ()


@dataclass(slots=True)
class _Block:
    lines: list[Line]

    @property
    def page_idx(self) -> int:
        return self.lines[0].page_idx

    @property
    def size(self) -> float:
        return median(line.size for line in self.lines)

    @property
    def bold(self) -> bool:
        return all(line.bold for line in self.lines)

    @property
    def bbox(self) -> Box:
        return _union(line.bbox for line in self.lines)

    @property
    def text(self) -> str:
        return join_lines(line.text for line in self.lines)


def build_content_list(lines: Sequence[Line], pages: Sequence[Page]) -> list[dict[str, Any]]:
    """The content list of a document: text blocks (headings marked) then images, page by page."""
    kept = drop_running_lines(lines, pages)
    blocks = group_blocks(kept)
    body = body_size(kept)
    levels = heading_levels(blocks, body)
    items: list[dict[str, Any]] = []
    for page_idx, page in enumerate(pages):
        for index, block in enumerate(blocks):
            if block.page_idx == page_idx:
                items.append(_text_item(block, levels.get(index)))
        items.extend(_image_item(page_idx, box) for box in page.images)
    return items


def join_lines(texts: Iterable[str]) -> str:
    """Join a block's lines: a pdfium hyphen mark glues the word back together, else a space."""
    out = ""
    for text in texts:
        if out.endswith(HYPHEN_MARK):
            out = out[: -len(HYPHEN_MARK)] + text
        else:
            out = f"{out} {text}" if out else text
    return re.sub(r"\s+", " ", out.replace(HYPHEN_MARK, "")).strip()


def drop_running_lines(lines: Sequence[Line], pages: Sequence[Page]) -> list[Line]:
    """Remove page numbers and running headers/footers (see the module docstring)."""
    banded: dict[str, set[int]] = {}
    for line in lines:
        if _in_margin(line, pages):
            banded.setdefault(_key(line.text), set()).add(line.page_idx)
    threshold = max(2, (len(pages) + 1) // 2)
    kept = []
    for line in lines:
        if _in_margin(line, pages):
            key = _key(line.text)
            if _PAGE_NUMBER.match(key) or (len(pages) >= 3 and len(banded[key]) >= threshold):
                continue
        kept.append(line)
    return kept


def group_blocks(lines: Sequence[Line]) -> list[_Block]:
    """Group consecutive lines into paragraph blocks (see the module docstring)."""
    blocks: list[_Block] = []
    for line in lines:
        if blocks and _continues(blocks[-1], line):
            blocks[-1].lines.append(line)
        else:
            blocks.append(_Block([line]))
    return blocks


def body_size(lines: Sequence[Line]) -> float:
    """The body text size: the median line size, each line weighted by its length."""
    weights: Counter[float] = Counter()
    for line in lines:
        weights[round(line.size, 1)] += len(line.text)
    if not weights:
        return 0.0
    total, running = sum(weights.values()), 0
    for size in sorted(weights):
        running += weights[size]
        if running * 2 >= total:
            return size
    return max(weights)  # pragma: no cover - the loop always returns


def heading_levels(blocks: Sequence[_Block], body: float) -> dict[int, int]:
    """``{block index: text_level}`` for the blocks that are headings."""
    found: dict[int, int | None] = {}
    for index, block in enumerate(blocks):
        kind = _heading_kind(block, body)
        if kind is not None:
            found[index] = kind
    sizes = sorted({round(blocks[i].size * 2) / 2 for i in found}, reverse=True)
    levels = {}
    for index, depth in found.items():
        rank = sizes.index(round(blocks[index].size * 2) / 2) + 1
        levels[index] = min(depth if depth else rank, 6)
    return levels


def _heading_kind(block: _Block, body: float) -> int | None:
    """``None`` if not a heading; else the numbering depth, or 0 when it is not numbered."""
    text = block.text
    larger = body > 0 and block.size >= body * 1.15
    short = len(block.lines) <= 3 and len(text) <= 150
    if not (short or (larger and len(block.lines) <= 6 and len(text) <= 300)):
        return None
    if sum(c.isalpha() for c in text) < 2 or _CAPTION.match(text) or text.endswith((",", ";")):
        return None
    words = len(text.split())
    depth = _numbering_depth(text)
    if depth:
        return depth
    if larger and words <= 40:
        return 0
    if block.bold and block.size >= body * 0.95 and words <= 12 and not text.endswith(":"):
        return 0
    return None


def _numbering_depth(text: str) -> int:
    match = _NUMBERED.match(text)
    if match is None or text.endswith(".") or "," in text or len(text.split()) > 12:
        return 0
    rest = text[match.end() - 1 :]
    if not rest[:1].isupper():
        return 0
    return match.group(1).count(".") + 1 if match.group(1) else 1


def _continues(block: _Block, line: Line) -> bool:
    prev = block.lines[-1]
    if line.page_idx != prev.page_idx or line.bold != prev.bold:
        return False
    size = max(prev.size, line.size)
    if size <= 0 or abs(prev.size - line.size) > 0.15 * size:
        return False
    gap = line.bbox[1] - prev.bbox[3]
    overlaps = line.bbox[0] < prev.bbox[2] and line.bbox[2] > prev.bbox[0]
    if not (overlaps and -0.5 * size <= gap <= 0.9 * size):
        return False
    # a line ending well short of the next one ends its paragraph (or is a run-in heading) ...
    if prev.bbox[2] < line.bbox[2] - 4 * size:
        return False
    # ... and a first-line indent after a full line starts the next paragraph
    left = min(b.bbox[0] for b in block.lines)
    right = max(b.bbox[2] for b in block.lines)
    return not (line.bbox[0] > left + 0.8 * size and prev.bbox[2] >= right - size)


def _in_margin(line: Line, pages: Sequence[Page]) -> bool:
    height = pages[line.page_idx].height
    return line.bbox[3] <= height * _MARGIN or line.bbox[1] >= height * (1 - _MARGIN)


def _key(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def _union(boxes: Iterable[Box]) -> Box:
    x0s, y0s, x1s, y1s = zip(*boxes, strict=True)
    return (min(x0s), min(y0s), max(x1s), max(y1s))


def _rounded(box: Box) -> list[float]:
    return [round(v, 2) for v in box]


def _text_item(block: _Block, level: int | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "text", "text": block.text, "page_idx": block.page_idx}
    if level is not None:
        item["text_level"] = level
    item["bbox"] = _rounded(block.bbox)
    return item


def _image_item(page_idx: int, box: Box) -> dict[str, Any]:
    return {
        "type": "image",
        "img_caption": [],
        "img_footnote": [],
        "page_idx": page_idx,
        "bbox": _rounded(box),
    }
