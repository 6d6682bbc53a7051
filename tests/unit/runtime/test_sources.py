"""Which rate-limited source a job's next try needs, known before dispatch."""

from __future__ import annotations

from typing import Any

from ingest_ray.adapters.ratelimit import RateSpec, SourceRates
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.pipelines.spec import StageSpec
from ingest_ray.runtime.sources import SourceMap
from ingest_ray.runtime.work import WorkItem

RATES = SourceRates(
    named={n: RateSpec(1.0) for n in ("openalex", "unpaywall", "core", "mine")},
    host=RateSpec(2.0),
)


def _item(kind: SourceKind, value: str, outputs: dict[str, Any] | None = None) -> WorkItem:
    source = DocumentSource(kind=kind, value=value)
    return WorkItem("j", "t", "d", "p", 5, source, outputs=outputs or {})


def test_metadata_needs_openalex_only_for_lookups() -> None:
    sources = SourceMap(RATES)
    spec = StageSpec("metadata")
    assert sources.next_source(_item(SourceKind.DOI, "10.1/x"), spec) == "openalex"
    assert sources.next_source(_item(SourceKind.OPENALEX, "W1"), spec) == "openalex"
    assert sources.next_source(_item(SourceKind.TEXT, "hello"), spec) is None


def test_pdf_fetch_needs_the_host_it_downloads_from_first() -> None:
    sources = SourceMap(RATES, unpaywall=True, core=True)
    spec = StageSpec("pdf_fetch")
    url = _item(SourceKind.PDF_URL, "https://Journals.example.org/a.pdf")
    assert sources.next_source(url, spec) == "host:journals.example.org"
    found = {"metadata": {"pdf_candidates": [{"source": "openalex", "url": "https://oa.org/p"}]}}
    assert sources.next_source(_item(SourceKind.DOI, "10.1/x", found), spec) == "host:oa.org"
    none = {"metadata": {"pdf_candidates": [], "work": {"doi": "10.1/x"}}}
    assert sources.next_source(_item(SourceKind.DOI, "10.1/x", none), spec) == "unpaywall"
    assert SourceMap(RATES, core=True).next_source(_item(SourceKind.DOI, "10.1/x"), spec) == "core"
    assert SourceMap(RATES).next_source(_item(SourceKind.DOI, "10.1/x"), spec) is None
    assert sources.next_source(_item(SourceKind.PDF_PATH, "/tmp/a.pdf"), spec) is None


def test_a_declared_source_wins_and_unlimited_sources_need_no_token() -> None:
    item = _item(SourceKind.TEXT, "x")
    assert SourceMap(RATES).next_source(item, StageSpec("chunk", rate_source="mine")) == "mine"
    assert SourceMap(RATES).next_source(item, StageSpec("chunk", rate_source="free")) is None
    assert SourceMap(RATES).next_source(item, StageSpec("chunk")) is None


def test_source_map_reads_the_adapters_section_of_the_settings() -> None:
    settings = Settings(sections={"adapters": {"rate_limit_backend": "none"}})
    assert SourceMap.from_settings(settings).limit("openalex") is None
    settings = Settings(sections={"adapters": {"source_rates": {"mine": 3.0}}})
    assert SourceMap.from_settings(settings).limit("mine") == RateSpec(3.0, 1.0)
