"""MinerU 4.x middle JSON to our content list, against MinerU's own renderer on the hand-written
fixture (tests/fixtures/mineru, origin in its README): the same items and fields, plain text."""

from __future__ import annotations

import copy
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.parsing.errors import MineruResultError
from ingest_ray.parsing.middle import content_list_from_middle, inline_text
from tests.fixtures.mineru.render_content_list import render

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "mineru"


def _load(name: str) -> Any:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def _plain(markdown: str) -> str:
    """MinerU's Markdown text as plain text: links to labels, no styles, no escapes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"</?su[pb]>", "", text)
    text = re.sub(r"(?<!\\)\*{1,3}([^*]+?)\*{1,3}", r"\1", text)
    return html.unescape(re.sub(r"\\([*_`~$])", r"\1", text))


def test_the_content_list_fixture_is_what_mineru_renders() -> None:
    assert render() == _load("content_list.json")


def test_our_content_list_is_minerus_with_plain_text() -> None:
    theirs, ours = _load("content_list.json"), content_list_from_middle(_load("middle.json"))
    assert len(ours) == len(theirs) == 28
    for mine, reference in zip(ours, theirs, strict=True):
        assert set(mine) == set(reference)
        for key, value in reference.items():
            expected = _plain(value) if key == "text" else value
            assert mine[key] == expected, (key, mine, reference)
    authors = next(i for i in ours if i["text"].startswith("A. Researcher"))
    assert authors["text"] == "A. Researcher1,*, B. Scientist2"


def test_refs_are_grouped_and_boxes_scaled_like_minerus() -> None:
    items = content_list_from_middle(_load("middle.json"))
    refs = [i for i in items if i.get("sub_type") == "ref_text"]
    assert len(refs) == 1 and len(refs[0]["list_items"]) == 2
    assert refs[0]["bbox"] == [100, 710, 900, 780]  # the two blocks' union, 0-1000
    assert [i["type"] for i in items].count("header") == 3


def test_inline_spans_become_plain_text() -> None:
    spans = [
        {"type": "text", "content": "rate ", "styles": ["bold"]},
        {"type": "equation_inline", "content": "k_f"},
        {
            "type": "hyperlink",
            "url": "https://x.org",
            "content": [{"type": "text", "content": " here"}],
        },
        {"type": "code_inline", "content": " `x`"},
    ]
    assert inline_text(spans) == "rate $k_f$ here `x`"
    assert inline_text("already text") == "already text"


@pytest.mark.parametrize(
    "broken",
    [
        [],
        {"schema": "docvortex.model", "pages": []},
        {"schema": "docvortex.middle"},
        {"schema": "docvortex.middle", "pages": [{"blocks": []}]},
        {"schema": "docvortex.middle", "pages": [{"page_idx": 0, "blocks": [{"type": "text"}]}]},
    ],
)
def test_a_malformed_middle_json_is_a_result_error(broken: Any) -> None:
    with pytest.raises(MineruResultError):
        content_list_from_middle(broken)


def test_unknown_block_types_are_skipped_not_fatal() -> None:
    middle = copy.deepcopy(_load("middle.json"))
    middle["pages"][0]["blocks"].append({"type": "hologram", "index": 99, "content": []})
    assert len(content_list_from_middle(middle)) == 28
