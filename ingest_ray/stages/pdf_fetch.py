"""The ``pdf_fetch`` stage: get the document's PDF into the blob store.

- ``pdf_url`` source: that URL; ``pdf_path`` source: the local file; ``pdf_blob`` source: a PDF
  already in the artifact store (an upload through the job API), checked and handed on.
- ``doi`` / ``openalex`` sources: the open-access chain (OpenAlex candidates from the metadata
  stage, then Unpaywall, then CORE).

Found: ``{"pdf_sha256", "pdf_size", "pdf_source", "pdf_url", "final_url", "attempts"}``, and
with a prober (``FetchSettings.probe_pdfs``) ``"pdf_pages"`` and ``"pdf_repaired"``: the stored
PDF probed in the sandbox here, on a CPU pool, so the parser on its accelerator need not; an
encrypted, broken or too long PDF then fails its job here, with the parser's reason.
No PDF anywhere: ``StageOutput(finish=True, outcome="no open-access full text")`` with the
attempts, so the job completes with its metadata indexed. When every candidate failed and at
least one failure may go away, the stage raises a retryable error instead.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ingest_ray.adapters.candidates import Attempt, PdfCandidate
from ingest_ray.adapters.chain import ChainResult, FetchedPdfLike, OpenAccessChain, PdfFetcher
from ingest_ray.adapters.core import CoreClient
from ingest_ray.adapters.doi import bare_doi
from ingest_ray.adapters.errors import NoOpenAccessRetryableError, UnsupportedSourceError
from ingest_ray.adapters.ratelimit import RateLimiter, rate_limiter_from_settings
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.adapters.unpaywall import UnpaywallClient
from ingest_ray.errors import IngestError
from ingest_ray.events import SourceKind
from ingest_ray.fetch import FetchSettings, SafeFetcher
from ingest_ray.parsing.sandbox import Prober
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.storage.blobs import BlobStore

log = logging.getLogger(__name__)

NO_OPEN_ACCESS = "no open-access full text"


class StageFetcher(PdfFetcher, Protocol):
    """The fetcher the stage needs (``ingest_ray.fetch.SafeFetcher`` satisfies it)."""

    def store_local_pdf(self, path: Path) -> FetchedPdfLike:
        """Validate and store a local PDF file."""
        ...

    def adopt_blob(self, digest: str) -> FetchedPdfLike:
        """Validate a PDF already in the blob store."""
        ...

    async def aclose(self) -> None:
        """Release the fetcher's HTTP client."""
        ...


def _found(
    pdf: FetchedPdfLike, source: str, url: str | None, attempts: list[Attempt]
) -> StageOutput:
    return StageOutput(
        data={
            "pdf_sha256": pdf.sha256,
            "pdf_size": pdf.size,
            "pdf_source": source,
            "pdf_url": url,
            "final_url": pdf.final_url,
            "attempts": [a.to_dict() for a in attempts],
        }
    )


class Probe:
    """Probes stored PDFs by digest: ``{"pdf_pages", "pdf_repaired"}``, or the parse error."""

    def __init__(self, prober: Prober, blobs: BlobStore) -> None:
        self._prober, self._blobs = prober, blobs

    async def pages(self, digest: str) -> dict[str, Any]:
        """The probe's answer for the blob ``digest``."""
        answer = await self._prober.probe(self._blobs.path(digest))
        return {"pdf_pages": answer.pages, "pdf_repaired": answer.repaired}

    async def aclose(self) -> None:
        """Stop the prober's child."""
        await self._prober.aclose()


def _summary(result: ChainResult) -> str:
    steps = "; ".join(f"{a.source}: {a.outcome}" for a in result.attempts)
    return f"no PDF yet, a source may answer later ({steps})"[:600]


class PdfFetchStage(BaseStage):
    """Finds and stores the PDF; owns (and closes) its clients, limiter and fetcher."""

    name: ClassVar[str] = "pdf_fetch"
    batch_size: ClassVar[int] = 1

    def __init__(
        self,
        settings: AdapterSettings,
        fetcher: StageFetcher,
        *,
        limiter: RateLimiter | None = None,
        unpaywall: UnpaywallClient | None = None,
        core: CoreClient | None = None,
        probe: Probe | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._probe = probe
        self._limiter = limiter or rate_limiter_from_settings(settings)
        if unpaywall is None and settings.unpaywall_email:
            unpaywall = UnpaywallClient(settings, limiter=self._limiter)
        if core is None and settings.core_api_key:
            core = CoreClient(settings, limiter=self._limiter)
        for missing, what in ((unpaywall, "unpaywall_email"), (core, "core_api_key")):
            if missing is None:
                log.info("pdf_fetch: %s not set, that source is skipped", what)
        self._unpaywall, self._core = unpaywall, core
        self._chain = OpenAccessChain(
            fetcher,
            unpaywall=unpaywall,
            core=core,
            max_per_source=settings.max_candidates_per_source,
            limiter=self._limiter,
        )

    @classmethod
    def from_settings(
        cls,
        settings: AdapterSettings,
        fetch_settings: FetchSettings,
        blobs: BlobStore,
        *,
        limiter: RateLimiter | None = None,
        prober: Prober | None = None,
    ) -> PdfFetchStage:
        """The stage with a :class:`~ingest_ray.fetch.SafeFetcher` storing into ``blobs``
        (and, with a ``prober``, probing what it stored)."""
        probe = Probe(prober, blobs) if prober is not None else None
        return cls(settings, SafeFetcher(fetch_settings, blobs), limiter=limiter, probe=probe)

    async def run(self, item: StageInput) -> StageOutput:
        """Fetch the PDF of ``item`` by its source kind (and probe it, with a prober)."""
        try:
            out = await self._run(item)
            digest = out.data.get("pdf_sha256")
            if self._probe is not None and isinstance(digest, str):
                out.data.update(await self._probe.pages(digest))
            return out
        except IngestError as exc:
            exc.job_id = exc.job_id or item.job_id
            exc.stage = exc.stage or self.name
            raise

    async def _run(self, item: StageInput) -> StageOutput:
        kind, value = item.source.kind, item.source.value
        if kind is SourceKind.PDF_URL:
            pdf = await self._chain.download(value)
            return _found(pdf, "url", value, [Attempt("url", value, "ok")])
        if kind is SourceKind.PDF_PATH:
            pdf = await asyncio.to_thread(self._fetcher.store_local_pdf, Path(value))
            return _found(pdf, "local", None, [Attempt("local", None, "ok")])
        if kind is SourceKind.PDF_BLOB:
            pdf = await asyncio.to_thread(self._fetcher.adopt_blob, value)
            return _found(pdf, "upload", None, [Attempt("upload", None, "ok")])
        if kind is SourceKind.TEXT:
            raise UnsupportedSourceError("a text source has no PDF; use the auto pipeline")
        return await self._from_chain(item)

    async def _from_chain(self, item: StageInput) -> StageOutput:
        metadata: dict[str, Any] = dict(item.outputs.get("metadata") or {})
        work = metadata.get("work") or {}
        doi = work.get("doi")
        if not doi and item.source.kind is SourceKind.DOI:
            doi = bare_doi(item.source.value)
        candidates = [PdfCandidate.from_dict(c) for c in metadata.get("pdf_candidates") or []]
        result = await self._chain.find_pdf(doi=doi, openalex_candidates=candidates)
        if result.pdf is not None and result.candidate is not None:
            return _found(
                result.pdf, result.candidate.source, result.candidate.url, result.attempts
            )
        if result.retryable:
            raise NoOpenAccessRetryableError(_summary(result), retry_after=result.retry_after())
        return StageOutput(
            data={"attempts": [a.to_dict() for a in result.attempts]},
            finish=True,
            outcome=NO_OPEN_ACCESS,
        )

    async def aclose(self) -> None:
        """Close the API clients, the fetcher, the limiter and the prober."""
        for client in (self._unpaywall, self._core, self._probe):
            if client is not None:
                await client.aclose()
        await self._fetcher.aclose()
        await self._limiter.aclose()
