"""The three PDF parsers behind one protocol, and the rule that picks one from the settings.

Every parser first *probes* the PDF in the sandboxed child (encryption, damage, page cap), so a
hostile file is refused before it reaches MinerU or the actor's own process; the CPU parser does
probe and parse in one child run. ``parse_many`` takes a batch: the MinerU parsers split, pack
and overlap it (:mod:`ingest_ray.parsing.planned`); one result or error per PDF, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import httpx

from ingest_ray.errors import ConfigurationError, IngestError
from ingest_ray.parsing.batching import Piece, PieceResult
from ingest_ray.parsing.content import ContentItem, normalize_content_list
from ingest_ray.parsing.inprocess import MineruEngine, mineru_available, mineru_runtime_available
from ingest_ray.parsing.mineru_pool import MineruPool
from ingest_ray.parsing.planned import Parsed, parse_planned
from ingest_ray.parsing.sandbox import run_sandboxed
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import Upload, upload_name

ParserName = Literal["mineru-api", "mineru", "pdfium"]


@dataclass(frozen=True, slots=True)
class ParseResult:
    """A parsed document: its content list, page count, which parser made it, and the pages
    MinerU failed on (0-based; the document is kept without them)."""

    content_list: list[ContentItem]
    pages: int
    parser: ParserName
    failed_pages: tuple[int, ...] = ()


@runtime_checkable
class PdfParser(Protocol):
    """Turns local PDF files into MinerU's content list; raises typed ``ParseError``s."""

    name: ParserName

    async def parse(self, pdf: Path) -> ParseResult:
        """Parse ``pdf``."""
        ...

    async def parse_many(
        self, pdfs: Sequence[Path], pages: Sequence[int | None] | None = None
    ) -> list[ParseResult | IngestError]:
        """Parse a batch; one result or error per PDF, in order. ``pages``: each PDF's page
        count where an earlier probe found it (``pdf_fetch``), so it need not be probed again."""
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

    async def parse_many(
        self, pdfs: Sequence[Path], pages: Sequence[int | None] | None = None
    ) -> list[ParseResult | IngestError]:
        """One child per PDF, one after the other (the CPU is what they share; the child
        counts the pages as it parses, so ``pages`` saves nothing here)."""
        return [await _caught(self.parse(pdf)) for pdf in pdfs]

    async def aclose(self) -> None:
        """Nothing to release."""


class MineruApiParser:
    """MinerU's HTTP API on one or more servers, after a sandboxed probe (and split)."""

    name: ParserName = "mineru-api"

    def __init__(self, settings: ParseSettings, *, client: httpx.AsyncClient | None = None):
        self._settings = settings
        self.pool = MineruPool(settings, client=client)

    async def parse(self, pdf: Path) -> ParseResult:
        """Probe, then let MinerU parse it."""
        return _raised((await self.parse_many([pdf]))[0])

    async def parse_many(
        self, pdfs: Sequence[Path], pages: Sequence[int | None] | None = None
    ) -> list[ParseResult | IngestError]:
        """Split long PDFs into files, pack requests, send them over the servers."""
        results = await parse_planned(
            pdfs, self._settings, self._send, split_files=True, pages=pages
        )
        return [_result(r, self.name) for r in results]

    async def _send(self, request: list[Piece]) -> list[PieceResult]:
        uploads = [Upload(upload_name(i), p.path, p.pages) for i, p in enumerate(request)]
        outcomes = await self.pool.parse_files(uploads)
        return [
            PieceResult(piece, error=o) if isinstance(o, Exception) else PieceResult(piece, o)
            for piece, o in zip(request, outcomes, strict=True)
        ]

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self.pool.aclose()


class MineruInProcessParser:
    """MinerU's Python API in this process (GPU actors), ``mineru_in_flight`` parses at once."""

    name: ParserName = "mineru"

    def __init__(self, settings: ParseSettings) -> None:
        self._settings = settings
        self.engine = MineruEngine(settings)
        self._slots = asyncio.Semaphore(settings.mineru_in_flight)

    async def parse(self, pdf: Path) -> ParseResult:
        """Probe, then run MinerU in a worker thread."""
        return _raised((await self.parse_many([pdf]))[0])

    async def parse_many(
        self, pdfs: Sequence[Path], pages: Sequence[int | None] | None = None
    ) -> list[ParseResult | IngestError]:
        """Page ranges of long PDFs run side by side, ``mineru_in_flight`` at a time."""
        results = await parse_planned(
            pdfs, self._settings, self._send, split_files=False, pages=pages
        )
        return [_result(r, self.name) for r in results]

    async def _send(self, request: list[Piece]) -> list[PieceResult]:
        return [await self._one(piece) for piece in request]

    async def _one(self, piece: Piece) -> PieceResult:
        async with self._slots:
            try:
                items = await asyncio.to_thread(
                    self.engine.parse, piece.path, piece.start, piece.end, piece.total
                )
            except IngestError as exc:
                return PieceResult(piece, error=exc)
        return PieceResult(piece, items)

    async def aclose(self) -> None:
        """MinerU keeps its models for the life of the process; nothing to release here."""


def choose_parser(
    settings: ParseSettings,
    *,
    mineru_importable: Callable[[], bool] = mineru_available,
    mineru_runnable: Callable[[ParseSettings], bool] = mineru_runtime_available,
) -> ParserName:
    """Which parser the settings ask for: the API when a server URL is set, else MinerU
    in-process when it can run models here (and the mode allows it), else the CPU parser."""
    if settings.mode == "api":
        if not settings.servers:
            raise ConfigurationError("parse mode 'api' needs INGEST_RAY_PARSE_MINERU_URLS")
        return "mineru-api"
    if settings.mode == "inprocess":
        if not mineru_importable():
            raise ConfigurationError("parse mode 'inprocess' needs the mineru package installed")
        return "mineru"
    if settings.mode == "cpu":
        return "pdfium"
    if settings.servers:
        return "mineru-api"
    return "mineru" if mineru_runnable(settings) else "pdfium"


def parser_from_settings(
    settings: ParseSettings,
    *,
    client: httpx.AsyncClient | None = None,
    mineru_importable: Callable[[], bool] = mineru_available,
    mineru_runnable: Callable[[ParseSettings], bool] = mineru_runtime_available,
) -> PdfParser:
    """The parser :func:`choose_parser` picks, constructed (nothing connects yet)."""
    name = choose_parser(
        settings, mineru_importable=mineru_importable, mineru_runnable=mineru_runnable
    )
    if name == "mineru-api":
        return MineruApiParser(settings, client=client)
    if name == "mineru":
        return MineruInProcessParser(settings)
    return CpuParser(settings)


def _result(value: Parsed | IngestError, parser: ParserName) -> ParseResult | IngestError:
    if isinstance(value, IngestError):
        return value
    return ParseResult(value.content_list, value.pages, parser, value.failed_pages)


def _raised(value: ParseResult | IngestError) -> ParseResult:
    if isinstance(value, IngestError):
        raise value
    return value


async def _caught(coro: Awaitable[ParseResult]) -> ParseResult | IngestError:
    try:
        return await coro
    except IngestError as exc:
        return exc
