"""The three PDF parsers behind one protocol, and the rule that picks one from the settings.

Every parser first *probes* the PDF in the sandboxed child (encryption, damage, page cap), so a
hostile file is refused before it reaches MinerU or the actor's own process; the CPU parser does
probe and parse in one child run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import httpx

from ingest_ray.errors import ConfigurationError
from ingest_ray.parsing.content import ContentItem, normalize_content_list
from ingest_ray.parsing.inprocess import mineru_available, parse_with_mineru
from ingest_ray.parsing.mineru_api import MineruClient
from ingest_ray.parsing.sandbox import run_sandboxed
from ingest_ray.parsing.settings import ParseSettings

ParserName = Literal["mineru-api", "mineru", "pdfium"]


@dataclass(frozen=True, slots=True)
class ParseResult:
    """A parsed document: its content list, page count and which parser made it."""

    content_list: list[ContentItem]
    pages: int
    parser: ParserName


@runtime_checkable
class PdfParser(Protocol):
    """Turns a local PDF file into MinerU's content list; raises typed ``ParseError``s."""

    name: ParserName

    async def parse(self, pdf: Path) -> ParseResult:
        """Parse ``pdf``."""
        ...

    async def aclose(self) -> None:
        """Release clients and models."""
        ...


class CpuParser:
    """pdfium in a sandboxed child, emitting MinerU's content-list format (no GPU, no OCR)."""

    name: ParserName = "pdfium"

    def __init__(self, settings: ParseSettings) -> None:
        self._settings = settings

    async def parse(self, pdf: Path) -> ParseResult:
        """Parse in the child; the child also enforces encryption, damage and page checks."""
        answer = await run_sandboxed("parse", pdf, self._settings)
        items = normalize_content_list(answer.items or [], pages=answer.pages)
        return ParseResult(content_list=items, pages=answer.pages, parser=self.name)

    async def aclose(self) -> None:
        """Nothing to release."""


class MineruApiParser:
    """MinerU's HTTP API (``mineru-api``), after a sandboxed probe of the file."""

    name: ParserName = "mineru-api"

    def __init__(self, settings: ParseSettings, *, client: httpx.AsyncClient | None = None):
        self._settings = settings
        self._client = MineruClient(settings, client=client)

    async def parse(self, pdf: Path) -> ParseResult:
        """Probe, then let MinerU parse it."""
        probe = await run_sandboxed("probe", pdf, self._settings)
        raw = await self._client.parse(pdf, upload_name=f"{pdf.name[:32]}.pdf")
        items = normalize_content_list(raw, pages=probe.pages)
        return ParseResult(content_list=items, pages=probe.pages, parser=self.name)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class MineruInProcessParser:
    """MinerU's Python API in this process (GPU actors), one document at a time."""

    name: ParserName = "mineru"

    def __init__(self, settings: ParseSettings) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()

    async def parse(self, pdf: Path) -> ParseResult:
        """Probe, then run MinerU in a worker thread."""
        probe = await run_sandboxed("probe", pdf, self._settings)
        async with self._lock:
            raw = await asyncio.to_thread(
                parse_with_mineru, pdf.read_bytes(), pdf.name[:32], self._settings
            )
        items = normalize_content_list(raw, pages=probe.pages)
        return ParseResult(content_list=items, pages=probe.pages, parser=self.name)

    async def aclose(self) -> None:
        """MinerU keeps its models for the life of the process; nothing to release here."""


def choose_parser(
    settings: ParseSettings, *, mineru_importable: Callable[[], bool] = mineru_available
) -> ParserName:
    """Which parser the settings ask for: the API when a URL is set, else MinerU in-process when
    the package is importable (and the mode allows it), else the CPU parser."""
    if settings.mode == "api":
        if settings.mineru_url is None:
            raise ConfigurationError("parse mode 'api' needs INGEST_RAY_PARSE_MINERU_URL")
        return "mineru-api"
    if settings.mode == "inprocess":
        if not mineru_importable():
            raise ConfigurationError("parse mode 'inprocess' needs the mineru package installed")
        return "mineru"
    if settings.mode == "cpu":
        return "pdfium"
    if settings.mineru_url is not None:
        return "mineru-api"
    return "mineru" if mineru_importable() else "pdfium"


def parser_from_settings(
    settings: ParseSettings,
    *,
    client: httpx.AsyncClient | None = None,
    mineru_importable: Callable[[], bool] = mineru_available,
) -> PdfParser:
    """The parser :func:`choose_parser` picks, constructed (nothing connects yet)."""
    name = choose_parser(settings, mineru_importable=mineru_importable)
    if name == "mineru-api":
        return MineruApiParser(settings, client=client)
    if name == "mineru":
        return MineruInProcessParser(settings)
    return CpuParser(settings)
