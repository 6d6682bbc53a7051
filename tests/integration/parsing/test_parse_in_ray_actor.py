"""The sandboxed CPU parser inside a real Ray async actor: the child runs, a timeout kills only
the child, and the actor keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from ingest_ray.parsing.errors import ParseError
from ingest_ray.parsing.parsers import CpuParser
from ingest_ray.parsing.settings import ParseSettings
from tests.conftest import FIXTURES

PDFS = FIXTURES / "pdfs"


@pytest.fixture(scope="module")
def ray_here() -> Iterator[None]:
    """A local Ray for this module (reused, and left running, if a session already has one)."""
    if ray.is_initialized():
        yield
        return
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote
class ParserActor:
    """What a StagePool actor does: build the parser once, await it per call."""

    def __init__(self, timeout_s: float) -> None:
        self.parser = CpuParser(ParseSettings(mode="cpu", timeout_s=timeout_s))

    async def parse(self, path: str) -> tuple[int, int] | str:
        try:
            result = await self.parser.parse(Path(path))
        except ParseError as exc:
            return exc.error_type
        return result.pages, len(result.content_list)


def test_cpu_parser_runs_in_a_ray_async_actor(ray_here: None) -> None:
    actor = ParserActor.remote(120.0)
    bmc = str(PDFS / "article-bmc-health-serv-res-2014-ccby-two-column-10pages.pdf")
    pages, items = ray.get(actor.parse.remote(bmc), timeout=120)
    assert pages == 10 and items > 100
    encrypted = str(PDFS / "sample-libreoffice-password-encrypted.pdf")
    assert ray.get(actor.parse.remote(encrypted), timeout=120) == "EncryptedPdfError"


def test_a_parse_timeout_kills_the_child_not_the_actor(ray_here: None) -> None:
    actor = ParserActor.remote(0.01)
    trivial = str(PDFS / "sample-trivial-pdflatex-1page.pdf")
    assert ray.get(actor.parse.remote(trivial), timeout=120) == "ParseTimeoutError"
    assert ray.get(actor.parse.remote(trivial), timeout=120) == "ParseTimeoutError"
