"""CORE API v3 client: find a work by DOI and its full-text download URL.

Written from CORE's published v3 documentation (https://api.core.ac.uk/docs/v3, sections
"Search" and "Works"): ``GET {base}/v3/search/works/?q=doi:"..."&limit=n`` answers
``{"totalHits", "limit", "offset", "results": [Work, ...]}``; a Work has ``id``, ``doi``,
``title``, ``downloadUrl`` (CORE's cached full text) and ``links`` (``{"type", "url"}``, type
``download`` among them). The key goes in ``Authorization: Bearer``.
"""

from __future__ import annotations

import httpx
from pydantic import Field

from ingest_ray.adapters.candidates import PdfCandidate, dedupe
from ingest_ray.adapters.doi import bare_doi, looks_like_doi
from ingest_ray.adapters.errors import InvalidIdentifierError
from ingest_ray.adapters.http import ApiClient, parse_model
from ingest_ray.adapters.ratelimit import RateLimiter
from ingest_ray.adapters.schema import ApiModel, NullableList
from ingest_ray.adapters.settings import CORE, AdapterSettings
from ingest_ray.errors import ConfigurationError

SEARCH_PATH = "/v3/search/works/"


class CoreLink(ApiModel):
    """A typed link of a CORE work (``download``, ``display``, ``reader`` ...)."""

    type: str | None = None
    url: str | None = None


class CoreWork(ApiModel):
    """The fields of a CORE v3 Work that the chain uses."""

    id: int | str | None = None
    doi: str | None = None
    title: str | None = None
    download_url: str | None = Field(default=None, alias="downloadUrl")
    links: NullableList[CoreLink] = Field(default_factory=list)

    def pdf_candidates(self) -> list[PdfCandidate]:
        """``downloadUrl`` first, then the ``download`` links."""
        urls = [self.download_url] + [
            link.url for link in self.links if (link.type or "").lower() == "download"
        ]
        return dedupe([PdfCandidate(CORE, url) for url in urls if url])


class CoreSearchResponse(ApiModel):
    """A page of CORE search results."""

    total_hits: int | None = Field(default=None, alias="totalHits")
    limit: int | None = None
    offset: int | None = None
    results: NullableList[CoreWork] = Field(default_factory=list)


def doi_query(doi: str) -> str:
    """The CORE query-language term matching exactly this DOI."""
    escaped = bare_doi(doi).replace("\\", "\\\\").replace('"', '\\"')
    return f'doi:"{escaped}"'


class CoreClient(ApiClient):
    """Async CORE v3 client sharing one HTTP connection pool."""

    source = CORE

    def __init__(
        self,
        settings: AdapterSettings,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.core_api_key:
            raise ConfigurationError("CORE requires an API key: set INGEST_RAY_CORE_API_KEY")
        super().__init__(
            settings,
            base_url=settings.core_base_url,
            limiter=limiter,
            headers={"Authorization": f"Bearer {settings.core_api_key}"},
            transport=transport,
        )

    async def search_doi(self, doi: str, *, limit: int = 5) -> list[CoreWork]:
        """CORE works whose DOI equals ``doi`` (CORE's search may return near misses)."""
        if not looks_like_doi(doi):
            raise InvalidIdentifierError(f"not a DOI: {doi!r}")
        data = await self.get_json(SEARCH_PATH, params={"q": doi_query(doi), "limit": str(limit)})
        page = parse_model(CoreSearchResponse, data, source=self.source)
        wanted = bare_doi(doi)
        return [work for work in page.results if work.doi and bare_doi(work.doi) == wanted]

    async def pdf_candidates(self, doi: str) -> list[PdfCandidate]:
        """Download URLs of the CORE works with this DOI."""
        works = await self.search_doi(doi)
        return dedupe([c for work in works for c in work.pdf_candidates()])
