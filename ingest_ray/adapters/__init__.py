"""Scholarly API adapters: OpenAlex, Unpaywall and CORE clients, shared rate limits, the
open-access PDF chain and a local replay server for offline runs and tests.

Every name imports its module when first read (``ingest_ray.lazy``): a stage actor that
only needs ``adapters.ratelimit`` does not load httpx and every client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_ray.lazy import lazy_exports

if TYPE_CHECKING:
    from ingest_ray.adapters.candidates import Attempt, PdfCandidate
    from ingest_ray.adapters.chain import ChainResult, OpenAccessChain, PdfFetcher
    from ingest_ray.adapters.core import CoreClient
    from ingest_ray.adapters.openalex import OpenAlexClient, OpenAlexWork
    from ingest_ray.adapters.ratelimit import (
        LocalRateLimiter,
        NullRateLimiter,
        RateLimiter,
        RateSpec,
        RedisRateLimiter,
        rate_limiter_from_settings,
    )
    from ingest_ray.adapters.settings import AdapterSettings
    from ingest_ray.adapters.unpaywall import UnpaywallClient, UnpaywallRecord

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Attempt": "candidates",
        "PdfCandidate": "candidates",
        "ChainResult": "chain",
        "OpenAccessChain": "chain",
        "PdfFetcher": "chain",
        "CoreClient": "core",
        "OpenAlexClient": "openalex",
        "OpenAlexWork": "openalex",
        "LocalRateLimiter": "ratelimit",
        "NullRateLimiter": "ratelimit",
        "RateLimiter": "ratelimit",
        "RateSpec": "ratelimit",
        "RedisRateLimiter": "ratelimit",
        "rate_limiter_from_settings": "ratelimit",
        "AdapterSettings": "settings",
        "UnpaywallClient": "unpaywall",
        "UnpaywallRecord": "unpaywall",
    },
)

__all__ = [
    "AdapterSettings",
    "Attempt",
    "ChainResult",
    "CoreClient",
    "LocalRateLimiter",
    "NullRateLimiter",
    "OpenAccessChain",
    "OpenAlexClient",
    "OpenAlexWork",
    "PdfCandidate",
    "PdfFetcher",
    "RateLimiter",
    "RateSpec",
    "RedisRateLimiter",
    "UnpaywallClient",
    "UnpaywallRecord",
    "rate_limiter_from_settings",
]
