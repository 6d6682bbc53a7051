"""Scholarly API adapters: OpenAlex, Unpaywall and CORE clients, shared rate limits, the
open-access PDF chain and a local replay server for offline runs and tests."""

from __future__ import annotations

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
