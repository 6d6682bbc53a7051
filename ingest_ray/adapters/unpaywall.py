"""Unpaywall v2 client: ``GET {base}/v2/{doi}?email=...``.

The API requires an e-mail address, so constructing the client without one is a
:class:`~ingest_ray.errors.ConfigurationError`. A DOI Unpaywall does not know (404) is not a
failure here: :meth:`UnpaywallClient.lookup` returns ``None`` and the chain moves on.
"""

from __future__ import annotations

import httpx
from pydantic import Field

from ingest_ray.adapters.candidates import PdfCandidate, dedupe
from ingest_ray.adapters.doi import doi_path, looks_like_doi
from ingest_ray.adapters.errors import InvalidIdentifierError, UpstreamNotFoundError
from ingest_ray.adapters.http import ApiClient, parse_model
from ingest_ray.adapters.ratelimit import RateLimiter
from ingest_ray.adapters.schema import ApiModel, NullableList
from ingest_ray.adapters.settings import UNPAYWALL, AdapterSettings
from ingest_ray.errors import ConfigurationError


class UnpaywallLocation(ApiModel):
    """One open-access copy of the article."""

    url: str | None = None
    url_for_pdf: str | None = None
    url_for_landing_page: str | None = None
    license: str | None = None
    version: str | None = None
    host_type: str | None = None
    is_best: bool | None = None


class UnpaywallRecord(ApiModel):
    """The fields of an Unpaywall DOI object that the chain uses."""

    doi: str
    is_oa: bool | None = None
    oa_status: str | None = None
    best_oa_location: UnpaywallLocation | None = None
    oa_locations: NullableList[UnpaywallLocation] = Field(default_factory=list)

    def pdf_candidates(self) -> list[PdfCandidate]:
        """``url_for_pdf`` of the best OA location first, then of the other OA locations."""
        found = [
            PdfCandidate(UNPAYWALL, loc.url_for_pdf, loc.version, loc.license)
            for loc in [self.best_oa_location, *self.oa_locations]
            if loc is not None and loc.url_for_pdf
        ]
        return dedupe(found)


class UnpaywallClient(ApiClient):
    """Async Unpaywall client sharing one HTTP connection pool."""

    source = UNPAYWALL

    def __init__(
        self,
        settings: AdapterSettings,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.unpaywall_email:
            raise ConfigurationError(
                "Unpaywall requires an e-mail address: set INGEST_RAY_UNPAYWALL_EMAIL"
            )
        self._email = settings.unpaywall_email
        super().__init__(
            settings,
            base_url=settings.unpaywall_base_url,
            limiter=limiter,
            transport=transport,
        )

    async def lookup(self, doi: str) -> UnpaywallRecord | None:
        """The Unpaywall record of ``doi``, or ``None`` when Unpaywall does not know it."""
        if not looks_like_doi(doi):
            raise InvalidIdentifierError(f"not a DOI: {doi!r}")
        try:
            data = await self.get_json(f"/v2/{doi_path(doi)}", params={"email": self._email})
        except UpstreamNotFoundError:
            return None
        return parse_model(UnpaywallRecord, data, source=self.source)
