from __future__ import annotations

import pytest

from ingest_ray.text.content import (
    ContentItem,
    abstract_to_items,
    parse_content_list,
    table_html_to_text,
    text_to_items,
)
from ingest_ray.text.errors import ContentFormatError


def test_content_item_page_is_one_based() -> None:
    assert ContentItem(text="x", page_idx=0).page == 1
    assert ContentItem(text="x").page is None


def test_content_item_heading_level_from_text_level_or_title_type() -> None:
    assert ContentItem(text="Intro", text_level=2).heading_level() == 2
    assert ContentItem(type="title", text="Paper").heading_level() == 1
    assert ContentItem(text="body", text_level=0).heading_level() is None
    assert ContentItem(text="body").heading_level() is None


def test_content_item_image_without_caption_has_no_text() -> None:
    item = ContentItem.model_validate({"type": "image", "img_path": "images/a.jpg"})
    assert item.body_text() == ""


def test_content_item_image_caption_is_its_text() -> None:
    item = ContentItem.model_validate(
        {"type": "image", "img_caption": ["Figure 2: Loss curve."], "image_footnote": "n=3"}
    )
    assert item.body_text() == "Figure 2: Loss curve.\nn=3"


def test_content_item_table_html_becomes_rows_of_cells() -> None:
    item = ContentItem.model_validate(
        {
            "type": "table",
            "table_caption": ["Table 1: Accuracy"],
            "table_body": "<table><tr><th>Model</th><th>Acc</th></tr>"
            "<tr><td>BERT &amp; co</td><td>0.91</td></tr></table>",
        }
    )
    assert item.body_text() == "Table 1: Accuracy\nModel | Acc\nBERT & co | 0.91"


def test_content_item_table_prefers_plain_text_when_given() -> None:
    item = ContentItem(type="table", text="a b c", table_body="<table><tr><td>x</td></tr></table>")
    assert item.body_text() == "a b c"


def test_content_item_equation_keeps_latex() -> None:
    assert ContentItem(type="equation", text="$$E = mc^2$$").body_text() == "$$E = mc^2$$"


@pytest.mark.parametrize("kind", ["header", "footer", "page_number", "aside_text"])
def test_content_item_page_furniture_is_skipped(kind: str) -> None:
    assert ContentItem(type=kind, text="Journal of Things, vol. 3").body_text() == ""


def test_content_item_list_items_and_code_body() -> None:
    assert ContentItem(type="list", list_items=["one", "two"]).body_text() == "one\ntwo"
    code = ContentItem(type="code", code_body="x = 1", code_caption=["Listing 1"])
    assert code.body_text() == "Listing 1\nx = 1"


def test_content_item_unknown_fields_are_ignored() -> None:
    item = ContentItem.model_validate({"type": "text", "text": "hi", "bbox": [0, 0, 1, 1]})
    assert item.body_text() == "hi"


def test_content_item_whitespace_is_collapsed() -> None:
    assert ContentItem(text="  a   b\n\n\n c  ").body_text() == "a b\nc"


def test_table_html_to_text_unescapes_entities() -> None:
    assert table_html_to_text("<tr><td>&lt;5</td><td>x</td></tr>") == "<5 | x"


def test_parse_content_list_rejects_non_lists() -> None:
    with pytest.raises(ContentFormatError, match="JSON list"):
        parse_content_list({"type": "text"})


def test_parse_content_list_rejects_bad_items() -> None:
    with pytest.raises(ContentFormatError):
        parse_content_list([{"type": "text", "text": "x", "page_idx": -1}])


def test_text_to_items_splits_paragraphs_and_markdown_headings() -> None:
    items = text_to_items("# Title\nIntro line.\n\n## Part A\n\nBody A.\n\nMore body.")
    assert [(i.text, i.heading_level()) for i in items] == [
        ("Title", 1),
        ("Intro line.", None),
        ("Part A", 2),
        ("Body A.", None),
        ("More body.", None),
    ]


def test_text_to_items_hash_without_space_is_not_a_heading() -> None:
    assert [i.heading_level() for i in text_to_items("#hashtag text")] == [None]


def test_abstract_to_items_title_is_top_heading() -> None:
    items = abstract_to_items("A Title", "An abstract.")
    assert [(i.text, i.heading_level()) for i in items] == [("A Title", 1), ("An abstract.", None)]
    assert abstract_to_items(None, "  ") == []
