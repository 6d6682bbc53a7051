"""MinerU's own server code on loopback: its ``/v1`` task router with the pdfium model
(:mod:`.task_backend`), and MinerU's complete API server on its model-free ``flash`` tier."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.integration.mineru import fake_model
from tests.integration.mineru.serving import serve
from tests.integration.mineru.task_backend import TaskStore, build_app

PDFS = FIXTURES / "pdfs"
_ESCAPED = re.compile(r"\\([*_`~$])")


@pytest.fixture(scope="module")
def pdfium_model() -> Iterator[None]:
    """MinerU's PDF model call replaced by the pdfium one in this process."""
    with pytest.MonkeyPatch.context() as patch:
        fake_model.install(patch)
        yield


@pytest.fixture
def slow_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each model call takes 3 s more (a task to cancel or to outwait); afterwards, wait for
    the calls MinerU's cancelled jobs left running in their threads."""
    monkeypatch.setattr(fake_model, "DELAY_S", 3.0)
    yield
    deadline = time.monotonic() + 30
    while len(fake_model.CALLS) < len(fake_model.STARTED) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def router(pdfium_model: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    """MinerU's task router with the pdfium TaskBackend, on a loopback port."""
    app = build_app(tmp_path_factory.mktemp("mineru-router"))
    with serve(app) as url:
        yield Router(url, app.state.task_store)


class Router:
    """Where the router listens, and its backend's store (to look at jobs)."""

    def __init__(self, url: str, store: TaskStore) -> None:
        self.url = url
        self.store = store


def pdf(name: str) -> Path:
    """A shared fixture PDF by (the start of) its name."""
    (path,) = sorted(PDFS.glob(f"{name}*.pdf"))
    return path


def plain(markdown: str) -> str:
    """MinerU's Markdown-escaped text as plain text (what our renderer emits)."""
    return html.unescape(_ESCAPED.sub(r"\1", markdown))


def shape(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must agree between two content lists of the same document."""
    return [
        (i["type"], i["page_idx"], i.get("text_level"), tuple(i.get("bbox") or ()),
         plain(i["text"]) if isinstance(i.get("text"), str) else None)
        for i in items
    ]  # fmt: skip
