"""Which rate-limited source a job's next try calls first, known before it is dispatched.

The Dispatcher takes that source's token before it sends the job (a job without one waits in
its timer heap); the stage's further calls take their own tokens or give the job back. The
mapping, from the stage and what the job already knows:

====================  ===========================================  =========================
stage                 job                                           first source
====================  ===========================================  =========================
any                   the stage's ``StageSpec.rate_source`` is set  that source
``metadata``          a DOI or an OpenAlex id                       ``openalex``
``metadata``          anything else (text, PDFs, URLs)              none (no API call)
``pdf_fetch``         a PDF URL                                     ``host:{its host}``
``pdf_fetch``         DOI/OpenAlex with OpenAlex PDF candidates     ``host:{first candidate}``
``pdf_fetch``         DOI/OpenAlex without candidates, with a DOI   ``unpaywall`` if configured,
                                                                    else ``core`` if configured
``pdf_fetch``         a local path, an upload, text                 none
other stages                                                        none
====================  ===========================================  =========================

(The order is the open-access chain's: ``adapters/chain.py``.) A source the settings do not
limit needs no token.
"""

from __future__ import annotations

from typing import Any

from ingest_ray.adapters.doi import bare_doi
from ingest_ray.adapters.ratelimit import RateSpec, SourceRates, host_source
from ingest_ray.adapters.settings import CORE, OPENALEX, UNPAYWALL, AdapterSettings
from ingest_ray.config import Settings
from ingest_ray.events import SourceKind
from ingest_ray.pipelines.spec import StageSpec
from ingest_ray.runtime.work import WorkItem

_LOOKUPS = (SourceKind.DOI, SourceKind.OPENALEX)


class SourceMap:
    """The first rate-limited source of a job's next try, and every source's budget."""

    def __init__(
        self, rates: SourceRates | None = None, *, unpaywall: bool = False, core: bool = False
    ) -> None:
        self.rates = rates or SourceRates()
        self._any = bool(self.rates.named or self.rates.host or self.rates.hosts)
        self._unpaywall = unpaywall
        self._core = core

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceMap:
        """The adapters' settings as the stages see them (``sections["adapters"]`` over the
        environment)."""
        adapters = adapter_settings(settings)
        return cls(
            SourceRates.from_settings(adapters),
            unpaywall=bool(adapters.unpaywall_email),
            core=bool(adapters.core_api_key),
        )

    def limit(self, source: str) -> RateSpec | None:
        """The budget of ``source`` (``None``: not limited)."""
        return self.rates.spec(source)

    def next_source(self, item: WorkItem, spec: StageSpec) -> str | None:
        """The limited source the next try of ``spec`` calls first, or ``None``."""
        if not self._any:
            return None
        source = spec.rate_source or self._builtin(item, spec.stage)
        if source is None or self.rates.spec(source) is None:
            return None
        return source

    def _builtin(self, item: WorkItem, stage: str) -> str | None:
        kind = item.source.kind
        if stage == "metadata":
            return OPENALEX if kind in _LOOKUPS else None
        if stage != "pdf_fetch":
            return None
        if kind is SourceKind.PDF_URL:
            return host_source(item.source.value)
        if kind not in _LOOKUPS:
            return None
        return self._chain_head(item)

    def _chain_head(self, item: WorkItem) -> str | None:
        metadata: dict[str, Any] = dict(item.outputs.get("metadata") or {})
        for candidate in metadata.get("pdf_candidates") or []:
            if isinstance(candidate, dict) and candidate.get("url"):
                return host_source(str(candidate["url"]))
        work = metadata.get("work") or {}
        doi = work.get("doi") if isinstance(work, dict) else None
        if not doi and item.source.kind is SourceKind.DOI:
            doi = bare_doi(item.source.value)
        if not doi:
            return None
        if self._unpaywall:
            return UNPAYWALL
        return CORE if self._core else None


def adapter_settings(settings: Settings) -> AdapterSettings:
    """The adapters' settings with the runtime's Redis (as ``stages/factories.py`` builds them,
    without importing every stage into the Dispatcher)."""
    base: dict[str, Any] = {"redis_url": settings.redis_url, "redis_prefix": settings.redis_prefix}
    return AdapterSettings(**{**base, **settings.sections.get("adapters", {})})
