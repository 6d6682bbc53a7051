"""Shared pieces of the adapter tests: the replay server over the captured API responses, a
recording sleep, and a fake PDF fetcher that follows the fetcher contract."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.adapters.replay import ReplayServer, adapter_settings_for
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.errors import IngestError
from ingest_ray.fetch import FetchedPdf
from tests.conftest import FIXTURES

APIS = FIXTURES / "apis"
CORE_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "core"


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """The captured OpenAlex/Unpaywall responses and the constructed CORE ones, on loopback."""
    with ReplayServer(APIS, core_dir=CORE_FIXTURES) as server:
        yield server


@pytest.fixture
def settings(replay: ReplayServer) -> AdapterSettings:
    """All three sources pointed at the replay server, no rate limits."""
    return adapter_settings_for(replay.base_url)


@dataclass
class FakeFetcher:
    """Records the URLs it is asked for; answers from ``outcomes`` (an error to raise, or
    anything else for success) and succeeds for URLs it has no outcome for when ``default_ok``."""

    outcomes: dict[str, Any] = field(default_factory=dict)
    default_ok: bool = False
    urls: list[str] = field(default_factory=list)
    local: list[Path] = field(default_factory=list)
    closed: bool = False

    @staticmethod
    def pdf_for(url: str) -> FetchedPdf:
        digest = hashlib.sha256(url.encode()).hexdigest()
        return FetchedPdf(digest, 1234, url, "application/pdf")

    async def fetch_pdf(self, url: str) -> FetchedPdf:
        self.urls.append(url)
        outcome = self.outcomes.get(url)
        if isinstance(outcome, IngestError):
            raise outcome
        if outcome is None and not self.default_ok:
            from ingest_ray.fetch import FetchNotFoundError

            raise FetchNotFoundError(f"{url} answered 404", url=url, status=404)
        return self.pdf_for(url)

    def store_local_pdf(self, path: Path) -> FetchedPdf:
        self.local.append(path)
        return FetchedPdf(hashlib.sha256(path.read_bytes()).hexdigest(), 7, None, None)

    async def aclose(self) -> None:
        self.closed = True
