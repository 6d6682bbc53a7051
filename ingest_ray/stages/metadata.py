"""The ``metadata`` stage: a work's bibliographic record and its open-access PDF candidates.

DOI and OpenAlex sources are looked up in OpenAlex; PDF, URL and text sources make no API call
and take what the request's metadata says (a ``title`` the user gave); a local PDF without one
is titled from its own info dictionary, when that holds a usable title. Output::

    {"work": {"openalex_id", "doi", "title", "abstract", "publication_year", "authors",
              "topics", "is_oa", "oa_status", "license", "referenced_works"},
     "pdf_candidates": [{"source": "openalex", "url", "version", "license"}, ...]}
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from ingest_ray.adapters.doi import bare_doi, looks_like_doi
from ingest_ray.adapters.errors import InvalidIdentifierError
from ingest_ray.adapters.openalex import OpenAlexClient, OpenAlexWork
from ingest_ray.adapters.ratelimit import RateLimiter, rate_limiter_from_settings
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.documents import pdf_info_title
from ingest_ray.errors import IngestError
from ingest_ray.events import SourceKind
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.storage.blobs import BlobStore


def _text(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return (value.strip() or None) if isinstance(value, str) else None


def user_work(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A work record from what the request said about the document (no API call)."""
    doi = _text(metadata, "doi")
    year = metadata.get("publication_year")
    return {
        "openalex_id": None,
        "doi": bare_doi(doi) if doi and looks_like_doi(doi) else None,
        "title": _text(metadata, "title"),
        "abstract": _text(metadata, "abstract"),
        "publication_year": year if isinstance(year, int) and not isinstance(year, bool) else None,
        "authors": [],
        "topics": [],
        "is_oa": None,
        "oa_status": None,
        "license": None,
        "referenced_works": [],
    }


class MetadataStage(BaseStage):
    """Looks DOI and OpenAlex sources up in OpenAlex; others keep the request's metadata."""

    name: ClassVar[str] = "metadata"
    batch_size: ClassVar[int] = 1

    def __init__(
        self,
        settings: AdapterSettings,
        *,
        limiter: RateLimiter | None = None,
        openalex: OpenAlexClient | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self._blobs = blobs
        self._limiter = limiter or rate_limiter_from_settings(settings)
        self._openalex = openalex or OpenAlexClient(settings, limiter=self._limiter)

    async def _lookup(self, item: StageInput) -> OpenAlexWork:
        value = item.source.value
        if item.source.kind is SourceKind.DOI:
            if not looks_like_doi(value):
                raise InvalidIdentifierError(f"not a DOI: {value!r}")
            return await self._openalex.get_work_by_doi(value)
        return await self._openalex.get_work(value)

    async def run(self, item: StageInput) -> StageOutput:
        """The work record and PDF candidates for ``item``."""
        if item.source.kind not in (SourceKind.DOI, SourceKind.OPENALEX):
            given = user_work(item.metadata)
            if given["title"] is None:
                given["title"] = await asyncio.to_thread(self._pdf_title, item)
            return StageOutput(data={"work": given, "pdf_candidates": []})
        try:
            work = await self._lookup(item)
        except IngestError as exc:
            exc.job_id = exc.job_id or item.job_id
            exc.stage = exc.stage or self.name
            raise
        record = work.to_record()
        record["title"] = record["title"] or _text(item.metadata, "title")
        candidates = [c.to_dict() for c in work.pdf_candidates()]
        return StageOutput(data={"work": record, "pdf_candidates": candidates})

    def _pdf_title(self, item: StageInput) -> str | None:
        """A local or uploaded PDF's own title (its info dictionary), if it has a usable one."""
        if item.source.kind is SourceKind.PDF_PATH:
            return pdf_info_title(item.source.value)
        if item.source.kind is SourceKind.PDF_BLOB and self._blobs is not None:
            try:
                return pdf_info_title(self._blobs.path(item.source.value))
            except (KeyError, OSError):  # a missing upload is pdf_fetch's to report
                return None
        return None

    async def aclose(self) -> None:
        """Close the OpenAlex client and the rate limiter."""
        await self._openalex.aclose()
        await self._limiter.aclose()
