"""OpenAlex client: one work by DOI (``/works/doi:{doi}``) or by id (``/works/W123``).

Requests carry the polite-pool ``mailto`` and, when configured, ``api_key``. A 404 raises
:class:`~ingest_ray.adapters.errors.WorkNotFoundError` (permanent, not retried).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from ingest_ray.adapters.candidates import PdfCandidate, dedupe
from ingest_ray.adapters.doi import bare_doi, doi_path, looks_like_doi, openalex_work_id
from ingest_ray.adapters.errors import InvalidIdentifierError, WorkNotFoundError
from ingest_ray.adapters.http import ApiClient, parse_model
from ingest_ray.adapters.ratelimit import RateLimiter
from ingest_ray.adapters.schema import ApiModel, NullableList
from ingest_ray.adapters.settings import OPENALEX, AdapterSettings

#: the work fields :class:`OpenAlexWork` reads (sent as ``select`` when enabled)
SELECT_FIELDS = (
    "id",
    "doi",
    "title",
    "display_name",
    "publication_year",
    "abstract_inverted_index",
    "authorships",
    "topics",
    "open_access",
    "best_oa_location",
    "primary_location",
    "locations",
    "referenced_works",
)


def short_id(url: str | None) -> str | None:
    """``W123`` from ``https://openalex.org/W123`` (and likewise for T, A, I ids)."""
    return None if url is None else url.rstrip("/").rsplit("/", 1)[-1]


class OpenAlexInstitution(ApiModel):
    """An institution of an authorship."""

    display_name: str | None = None
    ror: str | None = None


class OpenAlexAuthor(ApiModel):
    """The disambiguated author of an authorship."""

    id: str | None = None
    display_name: str | None = None
    orcid: str | None = None


class OpenAlexAuthorship(ApiModel):
    """One author's place on a work."""

    author: OpenAlexAuthor | None = None
    raw_author_name: str | None = None
    institutions: NullableList[OpenAlexInstitution] = Field(default_factory=list)


class OpenAlexTopic(ApiModel):
    """A topic OpenAlex assigned to the work."""

    id: str | None = None
    display_name: str | None = None


class OpenAlexOpenAccess(ApiModel):
    """The work's open-access summary."""

    is_oa: bool | None = None
    oa_status: str | None = None
    oa_url: str | None = None


class OpenAlexLocation(ApiModel):
    """Where a version of the work is hosted."""

    is_oa: bool | None = None
    pdf_url: str | None = None
    landing_page_url: str | None = None
    license: str | None = None
    version: str | None = None


class OpenAlexWork(ApiModel):
    """The fields of an OpenAlex work that the pipeline uses."""

    id: str
    doi: str | None = None
    title: str | None = None
    display_name: str | None = None
    publication_year: int | None = None
    abstract_inverted_index: dict[str, list[int]] | None = None
    authorships: NullableList[OpenAlexAuthorship] = Field(default_factory=list)
    topics: NullableList[OpenAlexTopic] = Field(default_factory=list)
    open_access: OpenAlexOpenAccess | None = None
    best_oa_location: OpenAlexLocation | None = None
    primary_location: OpenAlexLocation | None = None
    locations: NullableList[OpenAlexLocation] = Field(default_factory=list)
    referenced_works: NullableList[str] = Field(default_factory=list)

    def abstract(self) -> str | None:
        """The abstract rebuilt from OpenAlex's inverted index."""
        if not self.abstract_inverted_index:
            return None
        positions = {
            pos: word for word, where in self.abstract_inverted_index.items() for pos in where
        }
        return " ".join(positions[pos] for pos in sorted(positions)) or None

    def pdf_candidates(self) -> list[PdfCandidate]:
        """Open-access PDF URLs: the best OA location first, then other OA locations."""
        found = [
            PdfCandidate(OPENALEX, loc.pdf_url, loc.version, loc.license)
            for loc in [self.best_oa_location, *self.locations]
            if loc is not None and loc.pdf_url and (loc.is_oa or loc is self.best_oa_location)
        ]
        return dedupe(found)

    def license(self) -> str | None:
        """The licence of the best OA copy, else of the primary location."""
        for loc in (self.best_oa_location, self.primary_location):
            if loc is not None and loc.license:
                return loc.license
        return None

    def to_record(self) -> dict[str, Any]:
        """The ``work`` dict of the metadata stage's output (small JSON)."""
        oa = self.open_access or OpenAlexOpenAccess()
        return {
            "openalex_id": short_id(self.id),
            "doi": bare_doi(self.doi) if self.doi else None,
            "title": self.title or self.display_name,
            "abstract": self.abstract(),
            "publication_year": self.publication_year,
            "authors": [_author(a) for a in self.authorships],
            "topics": [{"id": short_id(t.id), "name": t.display_name} for t in self.topics],
            "is_oa": oa.is_oa,
            "oa_status": oa.oa_status,
            "license": self.license(),
            "referenced_works": [short_id(w) for w in self.referenced_works],
        }


def _author(authorship: OpenAlexAuthorship) -> dict[str, Any]:
    author = authorship.author or OpenAlexAuthor()
    return {
        "name": author.display_name or authorship.raw_author_name,
        "orcid": author.orcid,
        "institutions": [{"name": i.display_name, "ror": i.ror} for i in authorship.institutions],
    }


class OpenAlexClient(ApiClient):
    """Async OpenAlex works client sharing one HTTP connection pool."""

    source = OPENALEX

    def __init__(
        self,
        settings: AdapterSettings,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.openalex_base_url,
            limiter=limiter,
            transport=transport,
        )

    def _params(self) -> dict[str, str]:
        params = {}
        if self.settings.openalex_mailto:
            params["mailto"] = self.settings.openalex_mailto
        if self.settings.openalex_api_key:
            params["api_key"] = self.settings.openalex_api_key
        if self.settings.openalex_select:
            params["select"] = ",".join(SELECT_FIELDS)
        return params

    async def _work(self, path: str) -> OpenAlexWork:
        data = await self.get_json(path, params=self._params(), not_found=WorkNotFoundError)
        return parse_model(OpenAlexWork, data, source=self.source)

    async def get_work_by_doi(self, doi: str) -> OpenAlexWork:
        """The work registered under ``doi`` (any case, with or without resolver prefix)."""
        if not looks_like_doi(doi):
            raise InvalidIdentifierError(f"not a DOI: {doi!r}")
        return await self._work(f"/works/doi:{doi_path(doi)}")

    async def get_work(self, work_id: str) -> OpenAlexWork:
        """The work with OpenAlex id ``work_id`` (``W123`` or its URL)."""
        try:
            short = openalex_work_id(work_id)
        except ValueError as exc:
            raise InvalidIdentifierError(str(exc)) from exc
        return await self._work(f"/works/{short}")
