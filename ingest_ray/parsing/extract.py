"""Text lines and image boxes out of a PDF with pdfium (pypdfium2). Runs in the sandboxed child.

pdfium gives characters in content-stream order with their boxes; it marks line ends with a
generated ``\\r\\n`` and a hyphen removed at a line break with ``\\x02``. We cut lines there and
wherever the next character no longer sits on the current line, and record per line its median
font size (the font size times the text matrix scale) and whether all of it is set in a bold
font (weight >= 600 or a bold-looking font name). Lines mostly made of control characters or
U+FFFD (fonts without a usable text encoding) are dropped as unreadable.
"""

from __future__ import annotations

import ctypes
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped,unused-ignore]

from ingest_ray.parsing.layout import HYPHEN_MARK, Box, Line, Page

#: What pdfium raises (re-exported so the worker need not import pypdfium2 itself).
PdfiumError: type[Exception] = pdfium.PdfiumError

_BOLD_NAME = re.compile(r"bold|black|heavy|demi|semib|[.,+-](?:b|bd|bi)$", re.IGNORECASE)
_MIN_IMAGE_SIDE = 24.0  # points: smaller images are bullets, rules and logos
_GARBAGE_SHARE = 0.3


@dataclass(slots=True)
class _LineBuilder:
    """Accumulates the characters of the current line of one page."""

    page_idx: int
    origin: tuple[float, float]  # page box left, top: to move to a top-left origin
    lines: list[Line] = field(default_factory=list)
    chars: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    bolds: list[bool] = field(default_factory=list)
    baseline: float | None = None  # the line's baseline offset (in its writing direction)
    advance: float = 0.0  # the previous character's position along the writing direction
    garbage: int = 0

    def add(self, ch: str, box: Box, where: tuple[float, float], size: float, bold: bool) -> None:
        """Add a visible character, starting a new line first when it is not on this one.

        ``where`` is the character's origin in its own writing direction: (advance, baseline),
        so rotated text works like upright text. A character is on the current line when its
        baseline is within half a font size of the line's (superscripts and quotes stay) and it
        does not jump back against the writing direction.
        """
        advance, baseline = where
        tolerance = max(size, 1.0)
        if self.baseline is not None and (
            abs(baseline - self.baseline) > 0.5 * tolerance
            or advance < self.advance - 2 * tolerance
        ):
            self.flush()
        if self.baseline is None:
            self.baseline = baseline
        self.advance = advance
        left, top = self.origin
        self.chars.append(ch)
        self.boxes.append((box[0] - left, top - box[3], box[2] - left, top - box[1]))
        self.sizes.append(size)
        self.bolds.append(bold)

    def space(self) -> None:
        """A word break (pdfium's generated or a real space)."""
        if self.chars and self.chars[-1] != " ":
            self.chars.append(" ")

    def flush(self, suffix: str = "") -> None:
        """End the current line (``suffix`` = :data:`HYPHEN_MARK` after a removed hyphen)."""
        text = "".join(self.chars).strip()
        visible = len(self.boxes)
        if text and visible and self.garbage <= _GARBAGE_SHARE * (visible + self.garbage):
            self.lines.append(
                Line(
                    page_idx=self.page_idx,
                    text=text + suffix,
                    bbox=_union_flipped(self.boxes),
                    size=round(median(self.sizes), 2),
                    bold=all(self.bolds),
                )
            )
        self.chars, self.boxes, self.sizes, self.bolds = [], [], [], []
        self.baseline, self.advance, self.garbage = None, 0.0, 0


def open_document(data: bytes) -> Any:
    """Open PDF bytes with pdfium (raises ``pdfium.PdfiumError`` with an ``err_code``)."""
    return pdfium.PdfDocument(data)


def write_pages(document: Any, start: int, end: int, target: Path) -> None:
    """Write pages ``[start, end)`` of ``document`` to ``target`` as a PDF of their own."""
    part = pdfium.PdfDocument.new()
    try:
        part.import_pages(document, list(range(start, end)))
        part.save(str(target))
    finally:
        part.close()


def is_password_error(exc: Exception) -> bool:
    """Whether a pdfium load error means "encrypted" (password or unsupported security)."""
    code = getattr(exc, "err_code", None)
    return code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY)


def extract(document: Any) -> tuple[list[Line], list[Page]]:
    """Every page's lines (in pdfium order) and its size and image boxes."""
    lines: list[Line] = []
    pages: list[Page] = []
    for page_idx in range(len(document)):
        page = document[page_idx]
        try:
            left, _bottom, _right, top = page.get_bbox()
            textpage = page.get_textpage()
            try:
                lines.extend(_page_lines(textpage, page_idx, (left, top)))
            finally:
                textpage.close()
            images = tuple(_image_boxes(page, (left, top)))
            pages.append(Page(width=page.get_width(), height=page.get_height(), images=images))
        finally:
            page.close()
    return lines, pages


def _page_lines(textpage: Any, page_idx: int, origin: tuple[float, float]) -> list[Line]:
    builder = _LineBuilder(page_idx, origin)
    fonts = _FontCache()
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    origin_x, origin_y = ctypes.c_double(), ctypes.c_double()
    matrix = pdfium_c.FS_MATRIX()
    for index in range(pdfium_c.FPDFText_CountChars(textpage)):
        code = pdfium_c.FPDFText_GetUnicode(textpage, index)
        if code in (10, 13):
            builder.flush()
            continue
        if code == 2:
            builder.flush(HYPHEN_MARK)
            continue
        ch = chr(code)
        if ch.isspace():
            builder.space()
            continue
        if code < 32 or code in (0xFFFD, 0xFFFE):
            builder.garbage += 1
            continue
        pdfium_c.FPDFText_GetCharBox(textpage, index, left, right, bottom, top)
        pdfium_c.FPDFText_GetCharOrigin(textpage, index, origin_x, origin_y)
        pdfium_c.FPDFText_GetMatrix(textpage, index, matrix)
        scale = math.sqrt(abs(matrix.a * matrix.d - matrix.b * matrix.c)) or 1.0
        size = pdfium_c.FPDFText_GetFontSize(textpage, index) * scale
        box = (left.value, bottom.value, right.value, top.value)
        where = _in_direction(matrix, origin_x.value, origin_y.value)
        builder.add(ch, box, where, size, fonts.bold(textpage, index))
    builder.flush()
    return builder.lines


class _FontCache:
    """Boldness per text object (a page has far fewer text objects than characters)."""

    def __init__(self) -> None:
        self._bold: dict[int | None, bool] = {}
        self._name = ctypes.create_string_buffer(256)

    def bold(self, textpage: Any, index: int) -> bool:
        obj = pdfium_c.FPDFText_GetTextObject(textpage, index)
        key = ctypes.cast(obj, ctypes.c_void_p).value
        if key not in self._bold:
            self._bold[key] = self._lookup(obj) if key else False
        return self._bold[key]

    def _lookup(self, obj: Any) -> bool:
        font = pdfium_c.FPDFTextObj_GetFont(obj)
        if not font:
            return False
        if pdfium_c.FPDFFont_GetWeight(font) >= 600:
            return True
        size = pdfium_c.FPDFFont_GetBaseFontName(font, self._name, len(self._name))
        name = self._name.value.decode("latin-1") if size else ""
        return bool(_BOLD_NAME.search(name.split("+")[-1]))


def _image_boxes(page: Any, origin: tuple[float, float]) -> list[Box]:
    left, top = origin
    boxes = []
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2):
        x0, y0, x1, y1 = obj.get_bounds()
        if x1 - x0 >= _MIN_IMAGE_SIDE and y1 - y0 >= _MIN_IMAGE_SIDE:
            boxes.append((x0 - left, top - y1, x1 - left, top - y0))
    return boxes


def _in_direction(matrix: Any, x: float, y: float) -> tuple[float, float]:
    """(advance, baseline) of point (x, y) along the writing direction of ``matrix``."""
    norm = math.hypot(matrix.a, matrix.b)
    if norm == 0:
        return x, y
    ux, uy = matrix.a / norm, matrix.b / norm
    return x * ux + y * uy, y * ux - x * uy


def _union_flipped(boxes: list[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
