"""MinerU's content list: the one format every parser hands on, checked at the boundary.

A content list is a JSON array of items in reading order. Every item has a ``type`` (``text``,
``image``, ``table``, ``equation``, and in newer MinerU versions ``title``, ``list``, ``code``,
``header``, ...) and a 0-based ``page_idx``; text-bearing items have ``text``; headings carry
``text_level`` (1 = top level); ``bbox`` is ``[x0, y0, x1, y1]`` when known (MinerU's own
versions differ in units: PDF points, or 0-1000 page-relative; we pass them on unchanged).
Items of other shapes are passed on too: consumers must read fields with ``.get``.
"""

from __future__ import annotations

import json
from typing import Any, TypeGuard

from ingest_ray.parsing.errors import MineruResultError

ContentItem = dict[str, Any]


def normalize_content_list(raw: Any, *, pages: int | None = None) -> list[ContentItem]:
    """Check a content list (a JSON string or a list) and return it as a list of items.

    Raises :class:`MineruResultError` when it is not a list of objects with a string ``type``
    and an integer ``page_idx`` (below ``pages`` when given) and, where present, a string
    ``text``, an integer ``text_level`` and a four-number ``bbox``.
    """
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MineruResultError(f"content list is not JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise MineruResultError(f"content list must be a JSON array, got {type(raw).__name__}")
    for index, item in enumerate(raw):
        problem = _problem(item, pages)
        if problem:
            raise MineruResultError(f"content list item {index}: {problem}")
    return raw


def has_text(items: list[ContentItem]) -> bool:
    """Whether any item carries non-blank text (a scan parsed without OCR has none)."""
    return any(isinstance(item.get("text"), str) and item["text"].strip() for item in items)


def _problem(item: Any, pages: int | None) -> str | None:
    if not isinstance(item, dict):
        return f"must be an object, got {type(item).__name__}"
    page, level, box = item.get("page_idx"), item.get("text_level"), item.get("bbox")
    checks = (
        (isinstance(item.get("type"), str) and bool(item["type"]), "no type"),
        (_is_int(page) and page >= 0, f"page_idx must be a non-negative integer, got {page!r}"),
        (
            pages is None or not _is_int(page) or page < pages,
            f"page_idx {page} beyond {pages} pages",
        ),
        ("text" not in item or isinstance(item["text"], str), "text must be a string"),
        (level is None or _is_int(level), f"text_level must be an integer, got {level!r}"),
        (box is None or _is_box(box), f"bbox must be four numbers, got {box!r}"),
    )
    return next((message for ok, message in checks if not ok), None)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_box(box: Any) -> bool:
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    )
