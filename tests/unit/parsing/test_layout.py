"""The CPU parser's layout heuristics on hand-made lines (no pdfium): paragraphs, headings,
running headers and footers, hyphen joins."""

from __future__ import annotations

from ingest_ray.parsing.layout import (
    HYPHEN_MARK,
    Line,
    Page,
    body_size,
    build_content_list,
    join_lines,
)

PAGE = Page(width=595.0, height=842.0)


def _line(
    text: str,
    y: float,
    *,
    page: int = 0,
    size: float = 10.0,
    bold: bool = False,
    x0: float = 50.0,
    x1: float = 300.0,
) -> Line:
    return Line(page_idx=page, text=text, bbox=(x0, y, x1, y + size), size=size, bold=bold)


def _paragraph(y: float, n: int = 4, *, page: int = 0) -> list[Line]:
    return [_line(f"body text line {i} of a paragraph", y + 12 * i, page=page) for i in range(n)]


def test_layout_joins_consecutive_lines_into_one_paragraph() -> None:
    items = build_content_list(_paragraph(200), [PAGE])
    assert len(items) == 1
    assert items[0]["text"].startswith("body text line 0 of a paragraph body text line 1")
    assert items[0]["bbox"] == [50.0, 200.0, 300.0, 246.0]
    assert "text_level" not in items[0]


def test_layout_splits_paragraphs_at_a_large_gap() -> None:
    items = build_content_list([*_paragraph(200), *_paragraph(300)], [PAGE])
    assert len(items) == 2


def test_layout_marks_larger_text_as_a_heading_and_ranks_levels_by_size() -> None:
    lines = [
        _line("A Study of Things", 100, size=18.0),
        _line("Introduction", 150, size=13.0),
        *_paragraph(170, 6),
    ]
    items = build_content_list(lines, [PAGE])
    assert [(i["text"], i.get("text_level")) for i in items[:2]] == [
        ("A Study of Things", 1),
        ("Introduction", 2),
    ]
    assert "text_level" not in items[2]


def test_layout_marks_a_bold_body_size_line_as_a_heading() -> None:
    lines = [_line("Methods", 150, bold=True, x1=100.0), *_paragraph(164, 6)]
    items = build_content_list(lines, [PAGE])
    assert items[0] == {
        "type": "text",
        "text": "Methods",
        "page_idx": 0,
        "text_level": 1,
        "bbox": [50.0, 150.0, 100.0, 160.0],
    }


def test_layout_uses_numbering_depth_as_the_heading_level() -> None:
    lines = [
        _line("2 Methods", 100, x1=120.0),
        *_paragraph(140, 3),
        _line("2.1 Data Collection", 200, x1=160.0),
        *_paragraph(240, 3),
    ]
    items = build_content_list(lines, [PAGE])
    levels = {i["text"]: i.get("text_level") for i in items}
    assert levels["2 Methods"] == 1
    assert levels["2.1 Data Collection"] == 2


def test_layout_does_not_take_captions_lists_or_sentences_for_headings() -> None:
    lines = [
        _line("Table 1 Characteristics of the sample", 100, bold=True),
        *_paragraph(140, 3),
        _line("1. the organisation of patient flow", 200, x1=250.0),
        *_paragraph(240, 3),
        _line("3. Smith J, Jones K: A study of things", 300, x1=250.0),
        *_paragraph(340, 3),
    ]
    items = build_content_list(lines, [PAGE])
    assert not [i["text"] for i in items if "text_level" in i]


def test_layout_drops_page_numbers_and_running_headers() -> None:
    pages = [PAGE] * 3
    lines = []
    for page in range(3):
        lines.append(_line(f"Journal of Things 2024, page {page + 1}", 20, page=page))
        lines.extend(_paragraph(200, 3, page=page))
        lines.append(_line(str(page + 1), 800, page=page, x0=290.0, x1=300.0))
    items = build_content_list(lines, pages)
    texts = [i["text"] for i in items]
    assert len(items) == 3
    assert not [t for t in texts if "Journal" in t or t.isdigit()]


def test_layout_keeps_a_header_that_does_not_repeat() -> None:
    lines = [_line("A one-off note at the top", 20), *_paragraph(200, 3)]
    items = build_content_list(lines, [PAGE, PAGE, PAGE])
    assert items[0]["text"] == "A one-off note at the top"


def test_layout_emits_images_after_the_text_of_their_page() -> None:
    page = Page(width=595.0, height=842.0, images=((100.0, 400.0, 300.0, 600.0),))
    items = build_content_list(_paragraph(200), [page])
    assert items[-1] == {
        "type": "image",
        "img_caption": [],
        "img_footnote": [],
        "page_idx": 0,
        "bbox": [100.0, 400.0, 300.0, 600.0],
    }


def test_join_lines_glues_hyphenated_words_and_spaces_the_rest() -> None:
    assert join_lines([f"expec{HYPHEN_MARK}", "tations are  high", "for all"]) == (
        "expectations are high for all"
    )


def test_body_size_is_the_length_weighted_median() -> None:
    lines = [_line("x" * 500, 100, size=9.5), _line("Title", 50, size=20.0)]
    assert body_size(lines) == 9.5
    assert body_size([]) == 0.0
