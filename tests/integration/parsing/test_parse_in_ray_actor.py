"""The sandboxed CPU parser inside a real Ray async actor: the child runs, a timeout kills only
the child, and the actor keeps serving. The long-lived prober (what ``pdf_fetch`` probes with
ahead of an accelerator) likewise: one child for many probes, replaced when it dies."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from ingest_ray.parsing.errors import ParseError
from ingest_ray.parsing.parsers import CpuParser
from ingest_ray.parsing.sandbox import Prober
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


@ray.remote
class ProberActor:
    """What a ``pdf_fetch`` actor that probes ahead holds: one prober for its life (one child
    here, so the test can tell it from its replacement)."""

    def __init__(self) -> None:
        self.prober = Prober(ParseSettings(mode="cpu"), children=1)

    def _pid(self) -> int:
        (child,) = self.prober._all
        assert child._proc is not None
        return child._proc.pid

    async def probe(self, path: str) -> tuple[int, bool, int] | str:
        try:
            answer = await self.prober.probe(Path(path))
        except ParseError as exc:
            return exc.error_type
        return answer.pages, answer.repaired, self._pid()

    async def kill_child(self) -> None:
        (child,) = self.prober._all
        os.killpg(self._pid(), signal.SIGKILL)
        assert child._proc is not None
        await child._proc.wait()


def test_the_prober_serves_many_probes_from_one_child_in_a_ray_async_actor(
    ray_here: None,
) -> None:
    actor = ProberActor.remote()
    trivial = str(PDFS / "sample-trivial-pdflatex-1page.pdf")
    damaged = str(PDFS / "sample-unreadable-metadata-4pages.pdf")
    encrypted = str(PDFS / "sample-libreoffice-password-encrypted.pdf")
    first = ray.get(actor.probe.remote(trivial), timeout=120)
    repaired = ray.get(actor.probe.remote(damaged), timeout=120)
    assert ray.get(actor.probe.remote(encrypted), timeout=120) == "EncryptedPdfError"
    assert isinstance(first, tuple) and isinstance(repaired, tuple)
    assert first[:2] == (1, False) and repaired[1] is True
    assert first[2] == repaired[2]  # the same child answered both
    ray.get(actor.kill_child.remote(), timeout=60)
    again = ray.get(actor.probe.remote(trivial), timeout=120)
    assert isinstance(again, tuple) and again[:2] == (1, False) and again[2] != first[2]
