"""MinerU 4.x middle JSON to the content list every parser hands on.

MinerU 4.x answers with its *middle JSON* (schema ``docvortex.middle`` 2.0: ``pages[].blocks[]``
with inline spans, nested visual blocks and 0-1 page-relative boxes), no longer with a content
list. This module renders it the way MinerU's own ``mineru.render.render_content_list`` (Content
List V1, ``mineru/render/_internal/content_list/v1.py``) does - the same item per block, the same
fields, ``bbox`` scaled to 0-1000, consecutive ``ref_text`` blocks grouped into one list - with
one deliberate difference: text is plain, not Markdown (no ``\\_`` escapes or ``**bold**``, a
link is its label), because it is indexed for search. Inline formulas keep ``$...$``. It needs no
MinerU installed: the HTTP client runs where MinerU is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ingest_ray.parsing.content import ContentItem
from ingest_ray.parsing.errors import MineruResultError

MIDDLE_SCHEMA = "docvortex.middle"
_AUX_TYPES = frozenset({"header", "footer", "page_number", "aside_text"})
_INLINE_EQ = re.compile(r"<eq>(?P<latex>.*?)</eq>", re.IGNORECASE | re.DOTALL)
_VISUAL_BODIES = frozenset(
    {"image_body", "table_body", "chart_body", "code_body", "algorithm_body"}
)


def content_list_from_middle(middle: Any) -> list[ContentItem]:
    """The content list of a MinerU 4.x middle JSON document (a parsed JSON object)."""
    if not isinstance(middle, dict) or middle.get("schema") != MIDDLE_SCHEMA:
        found = middle.get("schema") if isinstance(middle, dict) else type(middle).__name__
        raise MineruResultError(f"expected MinerU middle JSON ({MIDDLE_SCHEMA}), got {found!r}")
    pages = middle.get("pages")
    if not isinstance(pages, list):
        raise MineruResultError("MinerU middle JSON has no pages")
    items: list[ContentItem] = []
    try:
        for page in pages:
            page_idx = int(page["page_idx"])
            for unit in _units(page.get("blocks") or []):
                item = _render(unit)
                if item is not None:
                    if box := _bbox(unit):
                        item["bbox"] = box
                    item["page_idx"] = page_idx
                    items.append(item)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MineruResultError(f"MinerU middle JSON is malformed: {exc!r}") from exc
    return items


def _units(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Blocks in reading order, consecutive ``ref_text`` blocks grouped (as MinerU does)."""
    refs: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "ref_text":
            refs.append(block)
            continue
        if refs:
            yield {"type": "_ref_group", "blocks": refs}
            refs = []
        yield block
    if refs:
        yield {"type": "_ref_group", "blocks": refs}


def _render(block: dict[str, Any]) -> ContentItem | None:  # noqa: PLR0911 - one arm per type
    kind = block["type"]
    if kind == "_ref_group":
        texts = (inline_text(b.get("content")) for b in block["blocks"] if b.get("content"))
        return {"type": "list", "sub_type": "ref_text", "list_items": list(texts)}
    if kind == "text":
        return {"type": "text", "text": inline_text(block["content"])}
    if kind in ("doc_title", "paragraph_title"):
        return {"type": "text", "text": inline_text(block["content"]), "text_level": block["level"]}
    if kind == "page_footnote" or kind in _AUX_TYPES:
        return {"type": kind, "text": inline_text(block["content"])}
    if kind == "equation":
        item: ContentItem = {"type": "equation", "img_path": _image_source(block)}
        if latex := str(block.get("content") or "").strip():
            item.update(text=latex, text_format="latex")
        return item
    if kind == "list":
        leaves = _leaves(block, "list")
        return {
            "type": "list",
            "sub_type": str(block.get("sub_type") or "text"),
            "list_items": [inline_text(leaf["content"]) for leaf, _ in leaves if leaf["content"]],
        }
    if kind == "index":
        leaves = _leaves(block, "index")
        labels = ((inline_text(leaf["content"]).strip(), depth) for leaf, depth in leaves)
        return {"type": "index", "list_items": [f"{'    ' * d}- {t}" for t, d in labels if t]}
    if kind in ("image", "table", "chart", "code"):
        return _visual(block)
    return None


def _visual(block: dict[str, Any]) -> ContentItem:
    kind = block["type"]
    body = next(c for c in block["content"] if c.get("type") in _VISUAL_BODIES)
    captions = _annotations(block, f"{kind}_caption")
    footnotes = _annotations(block, f"{kind}_footnote")
    if kind == "code":
        code = body["content"] if body["type"] == "code_body" else inline_text(body["content"])
        return {
            "type": "code",
            "sub_type": "algorithm" if block.get("sub_type") == "algorithm" else "code",
            "code_body": code,
            "code_caption": captions,
            "code_footnote": footnotes,
        }
    item: ContentItem = {
        "type": kind,
        "img_path": _image_source(body),
        f"{kind}_caption": captions,
        f"{kind}_footnote": footnotes,
    }
    embedded = _embedded(str(body.get("content") or ""))
    if kind == "table":
        if embedded:
            item["table_body"] = embedded
    elif kind == "chart" or embedded:
        item["content"] = embedded
    if kind in ("image", "chart") and block.get("sub_type"):
        item["sub_type"] = block["sub_type"]
    return item


def inline_text(spans: Any) -> str:
    """Plain text of MinerU inline spans (``text``, ``equation_inline``, ``code_inline``,
    ``hyperlink``); a string passes unchanged."""
    if isinstance(spans, str):
        return spans
    return "".join(_span(span) for span in spans or [])


def _span(span: dict[str, Any]) -> str:
    kind = span.get("type")
    if kind == "equation_inline":
        return f"${span['content']}$"
    if kind == "hyperlink":
        return inline_text(span.get("content"))
    return str(span.get("content") or "")


def _leaves(block: dict[str, Any], container: str, depth: int = 0) -> list[tuple[Any, int]]:
    leaves: list[tuple[Any, int]] = []
    for child in block.get("content") or []:
        if child.get("type") == container:
            leaves.extend(_leaves(child, container, depth + 1))
        else:
            leaves.append((child, depth))
    return leaves


def _annotations(block: dict[str, Any], kind: str) -> list[str]:
    found = [
        (child.get("index") is None, child.get("index") or 0, position, child)
        for position, child in enumerate(block["content"])
        if child.get("type") == kind
    ]
    return [inline_text(child["content"]) for *_, child in sorted(found, key=lambda t: t[:3])]


def _embedded(markup: str) -> str:
    """Table/chart HTML as MinerU passes it on, ``<eq>`` formulas as ``$...$``."""
    if not markup:
        return ""
    return _INLINE_EQ.sub(lambda m: f" ${m.group('latex').strip()}$ ", markup).strip()


def _image_source(block: dict[str, Any]) -> str:
    for key in ("image_path", "image_url"):
        if isinstance(block.get(key), str) and block[key]:
            return str(block[key])
    return ""


def _bbox(unit: dict[str, Any]) -> list[int] | None:
    box: Any
    if unit["type"] == "_ref_group":
        boxes = [b["bbox"] for b in unit["blocks"] if b.get("bbox")]
        if not boxes:
            return None
        box = [min(b[0] for b in boxes), min(b[1] for b in boxes)]
        box += [max(b[2] for b in boxes), max(b[3] for b in boxes)]
    else:
        box = unit.get("bbox")
    if not box:
        return None
    return [int(float(v) * 1000) for v in box]
