"""The ``mineru`` stage: the fetched PDF in, MinerU's content list out (into the blob store).

Reads ``outputs["pdf_fetch"]["pdf_sha256"]``, parses that blob with the parser the settings pick
(MinerU's HTTP API when ``mineru_url`` is set, MinerU in-process when the package is importable
and the mode allows it, else the sandboxed CPU parser), stores the content list with
``put_json`` and hands on ``{"content_sha256", "pages", "items", "parser"}``. A document that
cannot be parsed (encrypted, broken, too long, too slow, too big, or without any text) fails its
job with a permanent error; a busy MinerU server is a retryable one.
"""

from __future__ import annotations

from typing import ClassVar

from ingest_ray.errors import IngestError
from ingest_ray.parsing.content import has_text
from ingest_ray.parsing.errors import MissingPdfError, NoTextError
from ingest_ray.parsing.parsers import PdfParser, parser_from_settings
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.storage.blobs import BlobStore


class MineruStage(BaseStage):
    """Parse a job's PDF into MinerU's content list (one PDF at a time per actor)."""

    name: ClassVar[str] = "mineru"
    batch_size: ClassVar[int] = 1

    def __init__(
        self, settings: ParseSettings, blobs: BlobStore, *, parser: PdfParser | None = None
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.parser = parser if parser is not None else parser_from_settings(settings)

    async def run(self, item: StageInput) -> StageOutput:
        """Parse, store the content list, return its digest and counts."""
        try:
            return await self._run(item)
        except IngestError as exc:
            exc.job_id = exc.job_id or item.job_id
            exc.stage = exc.stage or self.name
            raise

    async def aclose(self) -> None:
        """Close the parser (its HTTP client)."""
        await self.parser.aclose()

    async def _run(self, item: StageInput) -> StageOutput:
        digest = (item.outputs.get("pdf_fetch") or {}).get("pdf_sha256")
        if not isinstance(digest, str):
            raise MissingPdfError("no pdf_fetch output with a pdf_sha256 to parse")
        try:
            path = self.blobs.path(digest)
        except ValueError as exc:
            raise MissingPdfError(f"pdf_sha256 is not a sha256 digest: {digest!r}") from exc
        if not path.is_file():
            raise MissingPdfError(f"the fetched PDF {digest} is not in the blob store")
        result = await self.parser.parse(path)
        if not has_text(result.content_list):
            raise NoTextError(
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
            }
        )
