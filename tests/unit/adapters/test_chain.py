"""Chain order and outcomes, on replayed API responses and a fake fetcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ingest_ray.adapters.candidates import PdfCandidate
from ingest_ray.adapters.chain import ChainResult, OpenAccessChain
from ingest_ray.adapters.core import CoreClient
from ingest_ray.adapters.openalex import OpenAlexClient
from ingest_ray.adapters.replay import ReplayServer
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.adapters.unpaywall import UnpaywallClient
from ingest_ray.fetch import FetchFailedError, NotAPdfError
from tests.unit.adapters.conftest import FakeFetcher

ELIFE = "10.7554/elife.01567"
IRIS = "https://iris.unil.ch/bitstreams/abf43caa-cbb7-44b3-85ac-d9849f3a24f0/download"
CORE_ELIFE = "https://core.ac.uk/download/90000001.pdf"


def _chain(
    settings: AdapterSettings,
    fetcher: FakeFetcher,
    doi: str | None,
    *,
    openalex_doi: str | None = None,
    candidates: Sequence[PdfCandidate] | None = None,
    unpaywall: bool = True,
    core: bool = True,
    max_per_source: int = 4,
) -> ChainResult:
    async def main() -> ChainResult:
        given = list(candidates or [])
        if openalex_doi is not None:
            openalex = OpenAlexClient(settings)
            try:
                given = (await openalex.get_work_by_doi(openalex_doi)).pdf_candidates()
            finally:
                await openalex.aclose()
        up = UnpaywallClient(settings) if unpaywall else None
        co = CoreClient(settings) if core else None
        chain = OpenAccessChain(fetcher, unpaywall=up, core=co, max_per_source=max_per_source)
        try:
            return await chain.find_pdf(doi=doi, openalex_candidates=given)
        finally:
            for client in (up, co):
                if client is not None:
                    await client.aclose()

    return asyncio.run(main())


def _steps(result: ChainResult) -> list[tuple[str, str | None, str]]:
    return [(a.source, a.url, a.outcome.split(":")[0]) for a in result.attempts]


def test_chain_openalex_pdf_wins_without_asking_unpaywall_or_core(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    fetcher = FakeFetcher(default_ok=True)
    result = _chain(
        settings,
        fetcher,
        "10.1371/journal.pone.0000030",
        openalex_doi="10.1371/journal.pone.0000030",
    )
    assert result.candidate is not None and result.candidate.source == "openalex"
    assert fetcher.urls == [
        "https://journals.plos.org/plosone/article/file?id=10.1371/journal.pone.0000030&type=printable"
    ]
    assert (
        result.pdf is not None and result.pdf.sha256 == FakeFetcher.pdf_for(fetcher.urls[0]).sha256
    )
    assert replay.count("/v2/") == 0 and replay.count("/v3/") == 0
    assert _steps(result) == [("openalex", fetcher.urls[0], "ok")]


def test_chain_elife_falls_through_unpaywall_404_to_core(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    fetcher = FakeFetcher({IRIS: NotAPdfError("html landing page", url=IRIS)}, default_ok=True)
    result = _chain(settings, fetcher, ELIFE, openalex_doi=ELIFE)
    assert fetcher.urls == [IRIS, CORE_ELIFE]
    assert result.candidate is not None and result.candidate.source == "core"
    assert _steps(result) == [
        ("openalex", IRIS, "failed"),
        ("unpaywall", None, "no open-access PDF URL"),
        ("core", CORE_ELIFE, "ok"),
    ]
    assert "NotAPdfError" in result.attempts[0].outcome
    assert result.retryable == []
    assert replay.count("/v2/") == 1


def test_chain_unpaywall_supplies_pdf_when_openalex_has_none(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    fetcher = FakeFetcher(default_ok=True)
    result = _chain(settings, fetcher, "10.1073/pnas.1414271111")
    assert result.candidate is not None and result.candidate.source == "unpaywall"
    assert fetcher.urls == ["https://www.pnas.org/content/pnas/111/45/E4832.full.pdf"]
    assert _steps(result)[0] == ("openalex", None, "no open-access PDF URL")
    assert replay.count("/v3/") == 0


def test_chain_unpaywall_landing_page_only_falls_through_to_core(settings: AdapterSettings) -> None:
    fetcher = FakeFetcher(default_ok=True)
    result = _chain(settings, fetcher, "10.1016/j.xgen.2025.100814")
    assert result.candidate is not None and result.candidate.source == "core"
    assert fetcher.urls == ["https://core.ac.uk/download/90000002.pdf"]


def test_chain_closed_sici_doi_finds_nothing_and_fetches_nothing(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    doi = "10.1890/0012-9658(2006)87[2832:tiopma]2.0.co;2"
    fetcher = FakeFetcher(default_ok=True)
    result = _chain(settings, fetcher, doi, openalex_doi=doi)
    assert result.pdf is None and fetcher.urls == []
    assert _steps(result) == [
        ("openalex", None, "no open-access PDF URL"),
        ("unpaywall", None, "no open-access PDF URL"),
        ("core", None, "no open-access PDF URL"),
    ]
    assert result.retryable == []
    assert [r.path for r in replay.requests if r.path.startswith("/v2/")] == [f"/v2/{doi}"]


def test_chain_records_retryable_download_failure(settings: AdapterSettings) -> None:
    url = "https://www.pnas.org/content/pnas/111/45/E4832.full.pdf"
    failure = FetchFailedError("503 from publisher", url=url, status=503, retry_after=30.0)
    result = _chain(settings, FakeFetcher({url: failure}), "10.1073/pnas.1414271111")
    assert result.pdf is None
    assert result.retryable == [failure]
    assert result.retry_after() == 30.0
    assert ("unpaywall", url, "retryable") in _steps(result)


def test_chain_counts_unavailable_lookup_as_retryable(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    replay.add_fault("/v2/", status=503, times=10)
    result = _chain(settings, FakeFetcher(default_ok=True), ELIFE, core=False)
    assert result.pdf is None
    assert len(result.retryable) == 1 and result.retryable[0].status == 503  # type: ignore[attr-defined]
    assert ("core", None, "skipped") in _steps(result)


def test_chain_skips_duplicates_and_caps_candidates_per_source(settings: AdapterSettings) -> None:
    given = [PdfCandidate("openalex", f"https://example.org/{n}.pdf") for n in range(5)]
    fetcher = FakeFetcher()
    result = _chain(
        settings,
        fetcher,
        None,
        candidates=given,
        max_per_source=2,
    )
    assert fetcher.urls == ["https://example.org/0.pdf", "https://example.org/1.pdf"]
    assert _steps(result)[-3:] == [
        ("openalex", None, "skipped"),
        ("unpaywall", None, "skipped"),
        ("core", None, "skipped"),
    ]
    assert result.attempts[2].outcome == "skipped: 3 more candidates"
    assert result.attempts[-1].outcome == "skipped: no DOI"


def test_chain_does_not_fetch_the_same_url_twice(settings: AdapterSettings) -> None:
    url = "https://www.pnas.org/content/pnas/111/45/E4832.full.pdf"
    fetcher = FakeFetcher({url: NotAPdfError("html", url=url)})
    result = _chain(
        settings, fetcher, "10.1073/pnas.1414271111", candidates=[PdfCandidate("openalex", url)]
    )
    assert fetcher.urls == [url]
    assert ("unpaywall", url, "skipped") in _steps(result)
