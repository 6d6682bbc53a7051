"""Parse a batch of PDFs the way a GPU parser runs fastest: probe, split, pack, send, merge.

1. every PDF is probed in the sandboxed child (encryption, damage, page cap) and, when it is
   longer than ``mineru_split_pages``, cut into page ranges there too; a PDF whose page count
   an earlier probe found (``pdf_fetch`` on a CPU pool) skips the child, unless it must be cut
   into files;
2. pieces are packed into requests up to ``mineru_batch_pages`` pages (:mod:`.batching`);
3. all requests are sent at once; the sender (the server pool, or MinerU in-process) keeps at
   most ``mineru_in_flight`` of them running per server;
4. each document's pieces are merged in page order.

A document fails alone: its probe error, or its pieces' error. When some of a document's pieces
parsed and the others failed *permanently* (MinerU said so), the document is kept with the pages
that parsed and the failed ones listed (``failed_pages``); when a failure may go away (a server
died, a timeout) the document raises it, so the job is tried again as a whole.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest_ray.errors import IngestError
from ingest_ray.parsing.batching import Merged, Piece, PieceResult, merge, pack
from ingest_ray.parsing.content import normalize_content_list
from ingest_ray.parsing.errors import MineruResultError, ParseError, TooManyPagesError
from ingest_ray.parsing.sandbox import run_sandboxed
from ingest_ray.parsing.settings import ParseSettings

#: probes (child processes) at once while a batch is prepared
PROBES_AT_ONCE = 4
#: sends one request (pieces) and answers one result per piece, in order
Sender = Callable[[list[Piece]], Awaitable[list[PieceResult]]]


@dataclass(frozen=True, slots=True)
class Parsed:
    """One document of a batch, parsed (maybe with some pages failed)."""

    content_list: list[dict[str, object]]
    pages: int
    failed_pages: tuple[int, ...] = ()


async def parse_planned(
    pdfs: Sequence[Path],
    settings: ParseSettings,
    send: Sender,
    *,
    split_files: bool,
    pages: Sequence[int | None] | None = None,
) -> list[Parsed | IngestError]:
    """Probe/split, pack, send and merge ``pdfs``; one result or error per PDF, in order.
    ``split_files``: cut long PDFs into files of their own (for servers); otherwise pieces
    point at the whole file with a page range (MinerU in-process reads ranges itself).
    ``pages``: each PDF's page count where it is known already (``None``: probe it)."""
    known = list(pages) if pages is not None else [None] * len(pdfs)
    with tempfile.TemporaryDirectory(prefix="ingest-ray-mineru-") as tmp:
        limit = asyncio.Semaphore(PROBES_AT_ONCE)
        work = Path(tmp)
        prepared = await asyncio.gather(
            *(
                _prepare(i, pdf, settings, work, limit=limit, split_files=split_files, known=n)
                for i, (pdf, n) in enumerate(zip(pdfs, known, strict=True))
            )
        )
        pieces = [p for entry in prepared if isinstance(entry, list) for p in entry]
        requests = pack(pieces, settings.mineru_batch_pages, settings.mineru_batch_files)
        answers = await asyncio.gather(*(_send(send, request) for request in requests))
    by_doc: dict[int, list[PieceResult]] = {}
    for result in (r for answer in answers for r in answer):
        by_doc.setdefault(result.piece.doc, []).append(result)
    out: list[Parsed | IngestError] = []
    for index, entry in enumerate(prepared):
        if isinstance(entry, IngestError):
            out.append(entry)
            continue
        out.append(_document(merge(by_doc.get(index, [])), max(p.end for p in entry)))
    return out


async def _prepare(
    index: int,
    pdf: Path,
    settings: ParseSettings,
    tmp: Path,
    *,
    limit: asyncio.Semaphore,
    split_files: bool,
    known: int | None = None,
) -> list[Piece] | IngestError:
    from ingest_ray.parsing.batching import split_ranges  # noqa: PLC0415 - tiny, pure

    split = settings.mineru_split_pages
    cut = split_files and split > 0
    if known is not None and not (cut and known > split):
        if known > settings.max_pages:
            return TooManyPagesError(f"{known} pages, more than the limit of {settings.max_pages}")
        ranges = split_ranges(known, 0 if split_files else split)
        return [Piece(index, a, b, pdf, True, known) for a, b in ranges]
    out = tmp / f"doc-{index:04d}"
    out.mkdir()
    try:
        async with limit:
            answer = await run_sandboxed(
                "split" if cut else "probe", pdf, settings, split_pages=split, out=out
            )
    except ParseError as exc:
        return exc
    if answer.parts:
        return [Piece(index, a, b, path, False, answer.pages) for a, b, path in answer.parts]
    ranges = split_ranges(answer.pages, 0 if split_files else split)
    return [Piece(index, a, b, pdf, True, answer.pages) for a, b in ranges]


async def _send(send: Sender, request: list[Piece]) -> list[PieceResult]:
    try:
        results = await send(request)
    except IngestError as exc:
        return [PieceResult(piece, error=exc) for piece in request]
    if len(results) != len(request):
        error = MineruResultError(f"{len(results)} results for a request of {len(request)} files")
        return [PieceResult(piece, error=error) for piece in request]
    return results


def _document(merged: Merged, pages: int) -> Parsed | IngestError:
    """A document's result; an error when nothing parsed or a failure may go away."""
    retryable = [e for e in merged.errors if _retryable(e)]
    permanent = [e for e in merged.errors if not _retryable(e)]
    if merged.errors and not merged.items:
        return _ingest_error((permanent or retryable)[0])
    if retryable:
        return _ingest_error(retryable[0])
    try:
        items = normalize_content_list(merged.items, pages=pages)
    except ParseError as exc:
        return exc
    return Parsed(content_list=items, pages=pages, failed_pages=merged.failed_pages)


def _ingest_error(error: Exception) -> IngestError:
    return error if isinstance(error, IngestError) else ParseError(str(error))


def _retryable(error: Exception) -> bool:
    return bool(getattr(error, "retryable", False))
