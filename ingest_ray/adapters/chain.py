"""The open-access chain: OpenAlex locations, then Unpaywall, then CORE, until a PDF downloads.

Candidates are tried in that order through the fetcher (which validates that the bytes are a
PDF and stores them); the first success wins. Each download first takes a token of its host
(``host:{name}``) from the limiter, which never waits: a host without a token is recorded as a
retryable step and the chain moves on. Every lookup and download is recorded as an
:class:`~ingest_ray.adapters.candidates.Attempt`, so a job shows which source supplied its PDF
and why the others were skipped. The chain decides nothing about retries: it reports the
retryable failures it met and the stage turns them into an outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ingest_ray.adapters.candidates import Attempt, PdfCandidate
from ingest_ray.adapters.core import CoreClient
from ingest_ray.adapters.ratelimit import NullRateLimiter, RateLimiter, host_source
from ingest_ray.adapters.settings import CORE, OPENALEX, UNPAYWALL
from ingest_ray.adapters.unpaywall import UnpaywallClient
from ingest_ray.errors import IngestError, RetryableError

_MAX_DETAIL = 160


class FetchedPdfLike(Protocol):
    """What a fetcher returns for a stored PDF (``ingest_ray.fetch.FetchedPdf``)."""

    @property
    def sha256(self) -> str:
        """The blob store digest of the PDF."""
        ...

    @property
    def size(self) -> int:
        """Bytes stored."""
        ...

    @property
    def final_url(self) -> str | None:
        """The URL after redirects."""
        ...

    @property
    def content_type(self) -> str | None:
        """The Content-Type the server sent."""
        ...


class PdfFetcher(Protocol):
    """Downloads one URL, validates it is a PDF, stores it (``ingest_ray.fetch.SafeFetcher``)."""

    async def fetch_pdf(self, url: str) -> FetchedPdfLike:
        """The stored PDF, or a typed retryable/permanent error."""
        ...


def describe(exc: IngestError) -> str:
    """A short attempt outcome for an error: its kind, type and message."""
    kind = "retryable" if exc.retryable else "failed"
    return f"{kind}: {exc.error_type}: {exc.message}"[:_MAX_DETAIL]


@dataclass
class ChainResult:
    """The PDF found (or not), the candidate that gave it, and every step on the way."""

    pdf: FetchedPdfLike | None = None
    candidate: PdfCandidate | None = None
    attempts: list[Attempt] = field(default_factory=list)
    retryable: list[RetryableError] = field(default_factory=list)

    def record(self, source: str, url: str | None, outcome: str) -> None:
        """Note one step."""
        self.attempts.append(Attempt(source, url, outcome))

    def failed(self, source: str, url: str | None, exc: IngestError) -> None:
        """Note a failed step; keep retryable errors for the stage's verdict."""
        self.record(source, url, describe(exc))
        if isinstance(exc, RetryableError):
            self.retryable.append(exc)

    def retry_after(self) -> float | None:
        """The longest wait any retryable failure asked for."""
        waits = [e.retry_after for e in self.retryable if e.retry_after is not None]
        return max(waits) if waits else None


Lookup = Callable[[str], Awaitable[list[PdfCandidate]]]


class OpenAccessChain:
    """Tries OpenAlex candidates, then Unpaywall's, then CORE's, through one fetcher."""

    def __init__(
        self,
        fetcher: PdfFetcher,
        *,
        unpaywall: UnpaywallClient | None = None,
        core: CoreClient | None = None,
        max_per_source: int = 4,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._limiter: RateLimiter = limiter or NullRateLimiter()
        self._unpaywall = unpaywall
        self._core = core
        self._max = max_per_source

    async def _unpaywall_candidates(self, doi: str) -> list[PdfCandidate]:
        assert self._unpaywall is not None
        record = await self._unpaywall.lookup(doi)
        return [] if record is None else record.pdf_candidates()

    async def _core_candidates(self, doi: str) -> list[PdfCandidate]:
        assert self._core is not None
        return await self._core.pdf_candidates(doi)

    async def find_pdf(
        self, *, doi: str | None, openalex_candidates: Sequence[PdfCandidate] = ()
    ) -> ChainResult:
        """Walk the chain until a candidate downloads and validates as a PDF."""
        result = ChainResult()
        tried: set[str] = set()
        if not openalex_candidates:
            result.record(OPENALEX, None, "no open-access PDF URL")
        if await self._try_all(result, tried, list(openalex_candidates)):
            return result
        lookups: list[tuple[str, Lookup | None]] = [
            (UNPAYWALL, self._unpaywall_candidates if self._unpaywall else None),
            (CORE, self._core_candidates if self._core else None),
        ]
        for source, lookup in lookups:
            candidates = await self._lookup(result, source, lookup, doi)
            if await self._try_all(result, tried, candidates):
                return result
        return result

    async def _lookup(
        self, result: ChainResult, source: str, lookup: Lookup | None, doi: str | None
    ) -> list[PdfCandidate]:
        if lookup is None:
            result.record(source, None, "skipped: not configured")
            return []
        if doi is None:
            result.record(source, None, "skipped: no DOI")
            return []
        try:
            candidates = await lookup(doi)
        except IngestError as exc:
            result.failed(source, None, exc)
            return []
        if not candidates:
            result.record(source, None, "no open-access PDF URL")
        return candidates

    async def download(self, url: str) -> FetchedPdfLike:
        """One download: a token of the URL's host, then the fetcher."""
        source = host_source(url)
        if source is not None:
            await self._limiter.acquire(source)
        return await self._fetcher.fetch_pdf(url)

    async def _try_all(
        self, result: ChainResult, tried: set[str], candidates: list[PdfCandidate]
    ) -> bool:
        for candidate in candidates[: self._max]:
            if candidate.url in tried:
                result.record(candidate.source, candidate.url, "skipped: already tried")
                continue
            tried.add(candidate.url)
            try:
                pdf = await self.download(candidate.url)
            except IngestError as exc:
                result.failed(candidate.source, candidate.url, exc)
                continue
            result.record(candidate.source, candidate.url, "ok")
            result.pdf, result.candidate = pdf, candidate
            return True
        if len(candidates) > self._max:
            extra = len(candidates) - self._max
            result.record(candidates[0].source, None, f"skipped: {extra} more candidates")
        return False
