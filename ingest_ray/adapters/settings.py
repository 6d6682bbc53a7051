"""Settings of the metadata and open-access adapters (OpenAlex, Unpaywall, CORE).

Every field can come from the environment with the ``INGEST_RAY_`` prefix, e.g.
``INGEST_RAY_UNPAYWALL_EMAIL``. Defaults are safe: real public base URLs, conservative rate
limits, nothing that connects at import time. Tests and ``--replay`` point the base URLs at a
local :class:`~ingest_ray.adapters.replay.ReplayServer` instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Source names: the rate-limit keys, the ``source`` of PDF candidates and attempts.
OPENALEX = "openalex"
UNPAYWALL = "unpaywall"
CORE = "core"


class AdapterSettings(BaseSettings):
    """Where the scholarly APIs live, who we are to them, and how hard we may call them."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_RAY_", extra="ignore", frozen=True, populate_by_name=True
    )

    openalex_base_url: str = "https://api.openalex.org"
    #: polite-pool e-mail sent as ``mailto``; OpenAlex answers faster and more reliably with it
    openalex_mailto: str | None = None
    openalex_api_key: str | None = None
    #: ask OpenAlex only for the fields we map (smaller responses)
    openalex_select: bool = True

    unpaywall_base_url: str = "https://api.unpaywall.org"
    #: required by the Unpaywall API; without it the chain skips Unpaywall
    unpaywall_email: str | None = None

    core_base_url: str = "https://api.core.ac.uk"
    #: CORE v3 API key (``Authorization: Bearer``); without it the chain skips CORE
    core_api_key: str | None = None

    http_timeout_s: float = Field(default=20.0, gt=0)
    user_agent: str = "ingest-ray/0.1 (+https://github.com/ingest-ray/ingest_ray)"

    #: ``redis`` shares each source's budget cluster-wide; ``local`` only per process. Nothing
    #: waits for a token: the Dispatcher takes one before it dispatches a job (the job waits in
    #: its timer heap), and a stage's further calls take one or give the job back at once
    rate_limit_backend: Literal["redis", "local", "none"] = "redis"
    openalex_rate_per_s: float = Field(default=8.0, gt=0)
    unpaywall_rate_per_s: float = Field(default=8.0, gt=0)
    #: CORE's registered tier allows about 25 requests a minute
    core_rate_per_s: float = Field(default=0.4, gt=0)
    #: every publisher host a PDF is downloaded from (source ``host:{name}``), unless
    #: ``host_rates`` names it
    host_rate_per_s: float = Field(default=2.0, gt=0)
    host_rates: dict[str, float] = Field(default_factory=dict)
    #: more named sources, for stages of your own that declare ``StageSpec.rate_source``
    source_rates: dict[str, float] = Field(default_factory=dict)
    rate_limit_burst: float = Field(default=1.0, ge=1)
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("INGEST_RAY_REDIS_URL", "REDIS_URL", "redis_url"),
    )
    redis_prefix: str = "ir:"

    #: at most this many PDF URLs are tried per source
    max_candidates_per_source: int = Field(default=4, ge=1)

    def rates(self) -> dict[str, float]:
        """Requests per second allowed for each named source (hosts aside)."""
        return {
            **self.source_rates,
            OPENALEX: self.openalex_rate_per_s,
            UNPAYWALL: self.unpaywall_rate_per_s,
            CORE: self.core_rate_per_s,
        }
