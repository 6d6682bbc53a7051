"""Rebuilding a damaged PDF from its objects, and checking content lists at the boundary."""

from __future__ import annotations

import json

import pypdfium2 as pdfium
import pytest

from ingest_ray.parsing.content import has_text, normalize_content_list
from ingest_ray.parsing.errors import MineruResultError
from ingest_ray.parsing.repair import rebuild
from tests.unit.parsing.pdfs import make_pdf


def _text_of(data: bytes) -> list[str]:
    document = pdfium.PdfDocument(data)
    try:
        texts = []
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded().strip())
            textpage.close()
            page.close()
        return texts
    finally:
        document.close()


def test_rebuild_restores_a_lost_page_tree() -> None:
    damaged = make_pdf([["first page"], ["second page"]], page_tree=False)
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(damaged).close()
    fixed = rebuild(damaged)
    assert fixed is not None
    assert _text_of(fixed) == ["first page", "second page"]


def test_rebuild_restores_a_file_whose_xref_is_gone() -> None:
    whole = make_pdf([["still here"]])
    damaged = whole[: whole.index(b"xref")] + b"\x00" * 200
    fixed = rebuild(damaged)
    assert fixed is not None
    assert _text_of(fixed) == ["still here"]


def test_rebuild_gives_up_without_a_catalog() -> None:
    assert rebuild(b"%PDF-1.4\n1 0 obj\n<< /Type /Page >>\nendobj\n") is None
    assert rebuild(b"not a pdf at all") is None


def test_normalize_accepts_mineru_json_strings_and_lists() -> None:
    items = [
        {"type": "text", "text": "Intro", "text_level": 1, "page_idx": 0, "bbox": [1, 2, 3, 4]},
        {"type": "image", "img_path": "images/a.jpg", "img_caption": [], "page_idx": 1},
        {"type": "equation", "text": "$$x$$", "text_format": "latex", "page_idx": 1},
    ]
    assert normalize_content_list(json.dumps(items), pages=2) == items
    assert normalize_content_list(items) == items


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not JSON"),
        ({"type": "text"}, "JSON array"),
        (["text"], "must be an object"),
        ([{"text": "x", "page_idx": 0}], "no type"),
        ([{"type": "text", "page_idx": -1}], "page_idx"),
        ([{"type": "text", "page_idx": True}], "page_idx"),
        ([{"type": "text", "page_idx": 5}], "beyond"),
        ([{"type": "text", "page_idx": 0, "text": 3}], "text must be a string"),
        ([{"type": "text", "page_idx": 0, "text_level": "1"}], "text_level"),
        ([{"type": "text", "page_idx": 0, "bbox": [1, 2, 3]}], "bbox"),
    ],
)
def test_normalize_rejects_what_is_not_a_content_list(raw: object, problem: str) -> None:
    with pytest.raises(MineruResultError) as info:
        normalize_content_list(raw, pages=2)
    assert problem in str(info.value)


def test_has_text_ignores_images_and_blank_text() -> None:
    assert not has_text([{"type": "image", "page_idx": 0}, {"type": "text", "text": "  "}])
    assert has_text([{"type": "text", "text": "words", "page_idx": 0}])
