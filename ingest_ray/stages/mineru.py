"""The ``mineru`` stage: the fetched PDFs in, MinerU's content lists out (into the blob store).

Reads ``outputs["pdf_fetch"]["pdf_sha256"]`` of each job (and ``pdf_pages``, when ``pdf_fetch``
probed the PDF, so the MinerU parsers skip their own probe), parses the blobs with the parser the
settings pick (MinerU's HTTP API when server URLs are set, MinerU in-process when it can run
here, else the sandboxed CPU parser), stores each content list with ``put_json`` and hands on
``{"content_sha256", "pages", "items", "parser", "failed_pages"}``. A batch of jobs is parsed
together (``run_batch``): MinerU gets several documents per request up to a page budget, long
PDFs split into page ranges that run in parallel, and ``k`` requests in flight per server (see
:mod:`ingest_ray.parsing.planned`). A document that cannot be parsed (encrypted, broken, too
long, too slow, too big, or without any text) fails its job with a permanent error; a busy or
failing MinerU server is a retryable one. Pages MinerU failed on while the rest parsed are
listed in ``failed_pages`` (0-based) and the document goes on without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ingest_ray.errors import IngestError
from ingest_ray.parsing.content import has_text
from ingest_ray.parsing.errors import MissingPdfError, NoTextError
from ingest_ray.parsing.parsers import ParseResult, PdfParser, parser_from_settings
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.storage.blobs import BlobStore


class MineruStage(BaseStage):
    """Parse jobs' PDFs into MinerU's content list, a batch at a time."""

    name: ClassVar[str] = "mineru"
    #: jobs per call at most (the pool's ``batch_size`` decides how many it hands over)
    batch_size: ClassVar[int] = 8

    def __init__(
        self, settings: ParseSettings, blobs: BlobStore, *, parser: PdfParser | None = None
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.parser = parser if parser is not None else parser_from_settings(settings)

    async def run(self, item: StageInput) -> StageOutput:
        """Parse one job's PDF (a batch of one)."""
        (result,) = await self.run_batch([item])
        if isinstance(result, IngestError):
            raise result
        return result

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Parse the batch's PDFs together; one output or error per job, in order."""
        found: list[Path | IngestError] = [self._pdf(item) for item in items]
        paths = [p for p in found if isinstance(p, Path)]
        pages = [_pages(i) for i, p in zip(items, found, strict=True) if isinstance(p, Path)]
        parsed = iter(await self.parser.parse_many(paths, pages) if paths else [])
        results: list[StageOutput | IngestError] = []
        for item, path in zip(items, found, strict=True):
            outcome = path if isinstance(path, IngestError) else next(parsed)
            result = outcome if isinstance(outcome, IngestError) else self._store(outcome)
            if isinstance(result, IngestError):
                result.job_id = result.job_id or item.job_id
                result.stage = result.stage or self.name
            results.append(result)
        return results

    async def aclose(self) -> None:
        """Close the parser (its HTTP clients)."""
        await self.parser.aclose()

    def _pdf(self, item: StageInput) -> Path | IngestError:
        digest = (item.outputs.get("pdf_fetch") or {}).get("pdf_sha256")
        if not isinstance(digest, str):
            return MissingPdfError("no pdf_fetch output with a pdf_sha256 to parse")
        try:
            path = self.blobs.path(digest)
        except ValueError:
            return MissingPdfError(f"pdf_sha256 is not a sha256 digest: {digest!r}")
        if not path.is_file():
            return MissingPdfError(f"the fetched PDF {digest} is not in the blob store")
        return path

    def _store(self, result: ParseResult) -> StageOutput | IngestError:
        if not has_text(result.content_list):
            return NoTextError(
                f"{result.parser} found no text in {result.pages} page(s); a scanned PDF needs "
                "MinerU (OCR), the CPU parser reads only a text layer"
            )
        content_sha256 = self.blobs.put_json(result.content_list)
        return StageOutput(
            data={
                "content_sha256": content_sha256,
                "pages": result.pages,
                "items": len(result.content_list),
                "parser": result.parser,
                "failed_pages": list(result.failed_pages),
            }
        )


def _pages(item: StageInput) -> int | None:
    """The page count ``pdf_fetch`` found when it probed the PDF (``None``: it did not)."""
    pages = (item.outputs.get("pdf_fetch") or {}).get("pdf_pages")
    return pages if isinstance(pages, int) and not isinstance(pages, bool) and pages > 0 else None
