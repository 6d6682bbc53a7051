"""The OpenAlex, Unpaywall and CORE clients on captured (and, for CORE, constructed) responses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from ingest_ray.adapters.core import CoreClient, doi_query
from ingest_ray.adapters.errors import InvalidIdentifierError, UpstreamResponseError
from ingest_ray.adapters.openalex import SELECT_FIELDS, OpenAlexClient
from ingest_ray.adapters.replay import ReplayServer, adapter_settings_for
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.adapters.unpaywall import UnpaywallClient
from ingest_ray.errors import ConfigurationError
from tests.unit.adapters.conftest import CORE_FIXTURES

T = TypeVar("T")
SICI_1890 = "10.1890/0012-9658(2006)87[2832:TIOPMA]2.0.CO;2"
SICI_1641 = "10.1641/0006-3568(2005)055[0851:POTAPF]2.0.CO;2"


def _run(
    make: Callable[[], OpenAlexClient | UnpaywallClient | CoreClient],
    call: Callable[..., Awaitable[T]],
) -> T:
    async def main() -> T:
        client = make()
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


# --- OpenAlex -----------------------------------------------------------------------------------


def test_openalex_by_id_maps_work_record(settings: AdapterSettings) -> None:
    work = _run(lambda: OpenAlexClient(settings), lambda c: c.get_work("W2741809807"))
    record = work.to_record()
    assert record["openalex_id"] == "W2741809807"
    assert record["doi"] == "10.7717/peerj.4375"
    assert record["publication_year"] == 2018
    assert record["abstract"].startswith("Despite growing interest in Open Access (OA)")
    assert record["authors"][0] == {
        "name": "Heather Piwowar",
        "orcid": "https://orcid.org/0000-0003-1613-5981",
        "institutions": [
            {
                "name": "Impact Technology Development (United States)",
                "ror": "https://ror.org/05ppvf150",
            }
        ],
    }
    assert record["topics"][0] == {
        "id": "T10102",
        "name": "scientometrics and bibliometrics research",
    }
    assert (record["is_oa"], record["oa_status"], record["license"]) == (True, "gold", "cc-by")
    assert len(record["referenced_works"]) == 45 and record["referenced_works"][0].startswith("W")
    json.dumps(record)


def test_openalex_oa_work_lists_best_location_first(settings: AdapterSettings) -> None:
    work = _run(lambda: OpenAlexClient(settings), lambda c: c.get_work("W2741809807"))
    urls = [c.url for c in work.pdf_candidates()]
    assert urls[0] == "https://peerj.com/articles/4375.pdf"
    assert "https://europepmc.org/articles/pmc5815332?pdf=render" in urls
    assert len(urls) == len(set(urls)) == 4


def test_openalex_by_doi_sends_mailto_select_and_api_key(replay: ReplayServer) -> None:
    settings = adapter_settings_for(replay.base_url, openalex_api_key="k3y")
    work = _run(
        lambda: OpenAlexClient(settings),
        lambda c: c.get_work_by_doi("https://doi.org/10.1101/097196"),
    )
    assert work.pdf_candidates()[0].url.endswith("097196.full.pdf")
    (request,) = replay.requests
    assert request.path == "/works/doi:10.1101/097196"
    assert request.query["mailto"] == ["replay@example.org"]
    assert request.query["api_key"] == ["k3y"]
    assert request.query["select"] == [",".join(SELECT_FIELDS)]


def test_openalex_sici_doi_is_encoded_and_found(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    work = _run(lambda: OpenAlexClient(settings), lambda c: c.get_work_by_doi(SICI_1890))
    assert work.to_record()["doi"] == SICI_1890.lower()
    assert work.pdf_candidates() == []
    assert work.to_record()["is_oa"] is False
    raw = replay.requests[0].raw_target
    assert "%5B2832:tiopma%5D2.0.co%3B2" in raw and "[" not in raw and ";" not in raw


def test_openalex_oa_gold_without_pdf_url_offers_only_repository_copy(
    settings: AdapterSettings,
) -> None:
    work = _run(
        lambda: OpenAlexClient(settings), lambda c: c.get_work_by_doi("10.7554/eLife.01567")
    )
    assert work.to_record()["oa_status"] == "gold"
    assert work.best_oa_location is not None and work.best_oa_location.pdf_url is None
    assert [c.url for c in work.pdf_candidates()] == [
        "https://iris.unil.ch/bitstreams/abf43caa-cbb7-44b3-85ac-d9849f3a24f0/download"
    ]


def test_openalex_null_title_stays_none(settings: AdapterSettings) -> None:
    work = _run(
        lambda: OpenAlexClient(settings), lambda c: c.get_work("https://openalex.org/W4234567890")
    )
    record = work.to_record()
    assert record["title"] is None
    assert record["abstract"] is None
    assert record["authors"][0]["name"] == "Bakhtiyor Rasulev"
    assert record["authors"][0]["orcid"] is None


def test_openalex_invalid_identifiers_are_refused_without_a_request(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    with pytest.raises(InvalidIdentifierError):
        _run(lambda: OpenAlexClient(settings), lambda c: c.get_work("A123"))
    with pytest.raises(InvalidIdentifierError):
        _run(lambda: OpenAlexClient(settings), lambda c: c.get_work_by_doi("not-a-doi"))
    assert replay.count() == 0


def test_openalex_unreadable_body_is_permanent() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"doi": 5}))
    settings = adapter_settings_for("http://127.0.0.1:9")
    with pytest.raises(UpstreamResponseError):
        _run(lambda: OpenAlexClient(settings, transport=transport), lambda c: c.get_work("W1"))


# --- Unpaywall ----------------------------------------------------------------------------------


def test_unpaywall_requires_email(replay: ReplayServer) -> None:
    settings = adapter_settings_for(replay.base_url, unpaywall_email=None)
    with pytest.raises(ConfigurationError, match="e-mail"):
        UnpaywallClient(settings)


def test_unpaywall_bronze_record_gives_pdf_url(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    record = _run(lambda: UnpaywallClient(settings), lambda c: c.lookup("10.1073/PNAS.1414271111"))
    assert record is not None and record.oa_status == "bronze"
    assert [c.url for c in record.pdf_candidates()] == [
        "https://www.pnas.org/content/pnas/111/45/E4832.full.pdf"
    ]
    assert replay.requests[0].query["email"] == ["replay@example.org"]


def test_unpaywall_sici_doi_with_brackets_is_matched_by_body(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    record = _run(lambda: UnpaywallClient(settings), lambda c: c.lookup(SICI_1641))
    assert record is not None
    assert record.pdf_candidates()[0].url.endswith("55-10-851.pdf")
    assert replay.requests[0].path == f"/v2/{SICI_1641.lower()}"


def test_unpaywall_closed_and_landing_only_records_have_no_candidates(
    settings: AdapterSettings,
) -> None:
    closed = _run(lambda: UnpaywallClient(settings), lambda c: c.lookup("10.1023/A:1007154515475"))
    gold = _run(lambda: UnpaywallClient(settings), lambda c: c.lookup("10.1016/j.xgen.2025.100814"))
    assert closed is not None and closed.is_oa is False and closed.pdf_candidates() == []
    assert gold is not None and gold.oa_status == "gold" and gold.pdf_candidates() == []


def test_unpaywall_404_is_none_and_not_retried(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    assert _run(lambda: UnpaywallClient(settings), lambda c: c.lookup("10.000/nodata")) is None
    assert [r.status for r in replay.requests] == [404]


# --- CORE (constructed responses, see tests/fixtures/core/README.md) ------------------------------


def test_core_requires_api_key(replay: ReplayServer) -> None:
    with pytest.raises(ConfigurationError, match="API key"):
        CoreClient(adapter_settings_for(replay.base_url, core_api_key=None))


def test_core_search_by_doi_returns_download_url_with_bearer_key(
    settings: AdapterSettings, replay: ReplayServer
) -> None:
    candidates = _run(
        lambda: CoreClient(settings), lambda c: c.pdf_candidates("10.7554/elife.01567")
    )
    assert [(c.source, c.url) for c in candidates] == [
        ("core", "https://core.ac.uk/download/90000001.pdf")
    ]
    (request,) = replay.requests
    assert request.path == "/v3/search/works/"
    assert request.query["q"] == ['doi:"10.7554/elife.01567"']
    assert request.headers["Authorization"] == "Bearer replay"


def test_core_ignores_near_miss_results_and_missing_download_url(settings: AdapterSettings) -> None:
    body = (CORE_FIXTURES / "search_works_doi_10.1890_sici_near_miss_no_download.json").read_bytes()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    works = _run(
        lambda: CoreClient(settings, transport=transport), lambda c: c.search_doi(SICI_1890)
    )
    assert [w.id for w in works] == [90000003]
    assert works[0].pdf_candidates() == []


def test_core_doi_query_escapes_quotes() -> None:
    assert doi_query('10.1234/a"b\\c') == 'doi:"10.1234/a\\"b\\\\c"'
