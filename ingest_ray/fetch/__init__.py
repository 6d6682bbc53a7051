"""Safe PDF fetching: an SSRF guard, address pinning, size/time caps, content-addressed storage."""

from __future__ import annotations

from ingest_ray.fetch.errors import (
    FetchError,
    FetchFailedError,
    FetchHttpError,
    FetchNotFoundError,
    FetchRefusedError,
    NotAPdfError,
    PdfTooLargeError,
    TooManyRedirectsError,
)
from ingest_ray.fetch.fetcher import FetchedPdf, SafeFetcher
from ingest_ray.fetch.guard import Resolver, address_problem, parse_target
from ingest_ray.fetch.settings import FetchSettings

__all__ = [
    "FetchError",
    "FetchFailedError",
    "FetchHttpError",
    "FetchNotFoundError",
    "FetchRefusedError",
    "FetchSettings",
    "FetchedPdf",
    "NotAPdfError",
    "PdfTooLargeError",
    "Resolver",
    "SafeFetcher",
    "TooManyRedirectsError",
    "address_problem",
    "parse_target",
]
