"""The input side of chunking: MinerU content-list items, and plain text or an abstract as items.

MinerU's ``content_list.json`` is a flat list of blocks in reading order; headings are blocks
with a ``text_level`` (1 = top level). Tables, images, code and lists keep their text in their own
fields (``table_body``, ``image_caption``, ...); the mineru stage may also give a plain ``text``.
Every source is turned into these items, so one chunker handles them all.
"""

from __future__ import annotations

import html
import re
from typing import Annotated, Any, Final

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ingest_ray.text.errors import ContentFormatError

#: block types kept whole in one chunk (split only when one alone exceeds a chunk)
ATOMIC_TYPES: Final = frozenset({"table", "equation", "interline_equation", "code"})
#: block types that are page furniture, not content (MinerU's discarded blocks)
SKIPPED_TYPES: Final = frozenset(
    {"header", "footer", "page_number", "page_header", "page_footer", "aside_text", "discarded"}
)
_MAX_HEADING_CHARS: Final = 300
_TAG = re.compile(r"<[^>]+>")
_CELL_END = re.compile(r"</t[dh]\s*>", re.IGNORECASE)
_ROW_END = re.compile(r"</tr\s*>|<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n")
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")


def _as_text_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return value


_TextList = Annotated[list[str], BeforeValidator(_as_text_list)]


def clean_text(text: str) -> str:
    """Trim, collapse runs of spaces, and keep at most single newlines inside one block."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def table_html_to_text(body: str) -> str:
    """Readable text of an HTML table: cells joined by `` | ``, one row per line."""
    text = _ROW_END.sub("\n", _CELL_END.sub(" | ", body))
    rows = (
        row.strip().rstrip("|").strip() for row in html.unescape(_TAG.sub(" ", text)).split("\n")
    )
    return clean_text("\n".join(rows))


class ContentItem(BaseModel):
    """One block of a MinerU content list (the fields chunking uses; others are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    type: str = "text"
    text: str | None = None
    text_level: int | None = None
    page_idx: int | None = Field(default=None, ge=0)
    table_body: str | None = None
    table_caption: _TextList = Field(default_factory=list)
    table_footnote: _TextList = Field(default_factory=list)
    image_caption: _TextList = Field(
        default_factory=list, validation_alias=AliasChoices("image_caption", "img_caption")
    )
    image_footnote: _TextList = Field(
        default_factory=list, validation_alias=AliasChoices("image_footnote", "img_footnote")
    )
    code_body: str | None = None
    code_caption: _TextList = Field(default_factory=list)
    list_items: _TextList = Field(default_factory=list)

    @property
    def page(self) -> int | None:
        """The 1-based page number (MinerU's ``page_idx`` is 0-based)."""
        return None if self.page_idx is None else self.page_idx + 1

    @property
    def atomic(self) -> bool:
        """Whether this block must not be cut between chunks (a table, an equation, code)."""
        return self.type in ATOMIC_TYPES

    def heading_level(self) -> int | None:
        """1 for a top-level heading, 2 below it, ...; ``None`` for body content."""
        if self.text_level is not None and self.text_level >= 1:
            return self.text_level
        return 1 if self.type == "title" else None

    def body_text(self) -> str:
        """The text this block contributes; empty for furniture and for images without caption."""
        if self.type in SKIPPED_TYPES:
            return ""
        parts: list[str]
        if self.type == "table":
            body = self.text or (table_html_to_text(self.table_body) if self.table_body else "")
            parts = [*self.table_caption, body, *self.table_footnote]
        elif self.type == "image":
            parts = [*self.image_caption, self.text or "", *self.image_footnote]
        elif self.type == "code":
            parts = [*self.code_caption, self.text or self.code_body or ""]
        elif self.type == "list" and not self.text:
            parts = list(self.list_items)
        else:
            parts = [self.text or ""]
        return clean_text("\n".join(part for part in parts if part and part.strip()))

    def heading_text(self) -> str:
        """The heading as one line, capped so a misread paragraph cannot bloat section paths."""
        return " ".join(self.body_text().split())[:_MAX_HEADING_CHARS]


def parse_content_list(value: Any) -> list[ContentItem]:
    """Validate a stored content list; a wrong shape raises :class:`ContentFormatError`."""
    if not isinstance(value, list):
        raise ContentFormatError(f"content list must be a JSON list, got {type(value).__name__}")
    try:
        return [ContentItem.model_validate(item) for item in value]
    except ValidationError as exc:
        raise ContentFormatError(f"invalid content-list item: {exc.errors()[0]['msg']}") from exc


def text_to_items(text: str) -> list[ContentItem]:
    """Plain text as content items: blank lines separate paragraphs, Markdown ``#`` lines are
    headings (so a Markdown TEXT source keeps its sections). Pages are unknown."""
    items: list[ContentItem] = []
    for block in _BLANK_LINES.split(text):
        lines = block.strip().split("\n")
        while lines and (match := _MD_HEADING.match(lines[0].strip())):
            items.append(ContentItem(text=match.group(2), text_level=len(match.group(1))))
            lines = lines[1:]
        rest = "\n".join(lines).strip()
        if rest:
            items.append(ContentItem(text=rest))
    return items


def abstract_to_items(title: str | None, abstract: str | None) -> list[ContentItem]:
    """A work's title (as the top heading) and abstract as content items."""
    items: list[ContentItem] = []
    if title and title.strip():
        items.append(ContentItem(type="title", text=title, text_level=1))
    if abstract and abstract.strip():
        items.append(ContentItem(text=abstract))
    return items
