from __future__ import annotations

import json

import pytest

from ingest_ray.index.entities import (
    AUTHOR,
    CITED_DOI,
    CITED_WORK,
    DOI,
    INSTITUTION,
    TOPIC,
    WORK,
    clean_doi,
    extract_dois,
    map_document,
    normalize_entity,
    normalize_orcid,
    orcid_checksum_ok,
    work_mentions,
)
from ingest_ray.index.errors import InvalidEntityError
from tests.conftest import FIXTURES

PEERJ = FIXTURES / "apis" / "openalex" / "work_W2741809807_peerj_oa_gold.json"


def _record_from_openalex(body: dict) -> dict:
    """The metadata stage's ``work`` shape, built from a captured OpenAlex response."""
    from ingest_ray.adapters.openalex import OpenAlexWork

    return OpenAlexWork.model_validate(body).to_record()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("0000-0002-1825-0097", "orcid:0000-0002-1825-0097"),
        ("https://orcid.org/0000-0002-1825-0097", "orcid:0000-0002-1825-0097"),
        ("orcid:0000-0002-1825-0097", "orcid:0000-0002-1825-0097"),
        ("0000-0002-9079-593x", "orcid:0000-0002-9079-593X"),
        ("https://ror.org/03yrm5c26", "ror:03yrm5c26"),
        ("ror:03YRM5C26", "ror:03yrm5c26"),
        ("03yrm5c26", "ror:03yrm5c26"),
        ("10.7717/PeerJ.4375", "doi:10.7717/peerj.4375"),
        ("https://doi.org/10.7717/peerj.4375", "doi:10.7717/peerj.4375"),
        ("doi:10.7717/peerj.4375.", "doi:10.7717/peerj.4375"),
        ("https://openalex.org/T10102", "openalex:T10102"),
        ("w2741809807", "openalex:W2741809807"),
    ],
)
def test_normalize_entity_accepts_every_spelling(typed: str, expected: str) -> None:
    assert normalize_entity(typed) == expected


@pytest.mark.parametrize("bad", ["", "Josiah Carberry", "0000-0002-1825-0098", "11.1234/x", "doi:"])
def test_normalize_entity_rejects_junk(bad: str) -> None:
    with pytest.raises(InvalidEntityError):
        normalize_entity(bad)


def test_orcid_checksum() -> None:
    assert orcid_checksum_ok("0000-0002-1825-0097")
    assert orcid_checksum_ok("0000-0002-9079-593X")
    assert not orcid_checksum_ok("0000-0002-1825-0096")
    assert normalize_orcid("0000-0002-1825-0096") is None


def test_clean_doi_strips_trailing_punctuation_but_keeps_balanced_brackets() -> None:
    assert clean_doi("10.1000/xyz123).") == "10.1000/xyz123"
    assert clean_doi("10.1000/ABC;") == "10.1000/abc"
    sici = "10.1890/0012-9658(2006)87[2832:TIOPMA]2.0.CO;2"
    assert clean_doi(sici + ").") == sici.lower()
    assert clean_doi("not a doi") is None


def test_extract_dois_from_text_in_order_without_duplicates() -> None:
    text = (
        "As shown before (doi:10.1371/journal.pone.0000030), and in "
        "https://doi.org/10.1101/097196. See also 10.1890/0012-9658(2006)87[2832:TIOPMA]2.0.CO;2, "
        "and again DOI: 10.1371/JOURNAL.PONE.0000030; version 10.5 of the tool is not a DOI."
    )
    assert extract_dois([text, "10.7554/eLife.01567"]) == [
        "10.1371/journal.pone.0000030",
        "10.1101/097196",
        "10.1890/0012-9658(2006)87[2832:tiopma]2.0.co;2",
        "10.7554/elife.01567",
    ]


def test_work_mentions_from_a_real_openalex_record() -> None:
    work = _record_from_openalex(json.loads(PEERJ.read_text()))
    mentions = work_mentions(work)
    by_type: dict[str, list[str]] = {}
    for mention in mentions:
        by_type.setdefault(mention.entity_type, []).append(mention.entity_id)
    assert by_type[DOI] == ["doi:10.7717/peerj.4375"]
    assert by_type[WORK] == ["openalex:W2741809807"]
    assert "orcid:0000-0003-1613-5981" in by_type[AUTHOR]  # Heather Piwowar
    assert "ror:0161xgx34" in by_type[INSTITUTION]  # Université de Montréal
    assert "openalex:T10102" in by_type[TOPIC]
    assert len(by_type[CITED_WORK]) == len(work["referenced_works"]) > 0
    labels = {m.entity_id: m.label for m in mentions}
    assert labels["orcid:0000-0003-1613-5981"] == "Heather Piwowar"


def test_map_document_adds_cited_dois_but_not_its_own() -> None:
    work = {"doi": "10.7717/peerj.4375", "authors": [{"name": "X", "orcid": None}]}
    texts = ["This article is 10.7717/peerj.4375.", "It cites 10.1101/097196 twice: 10.1101/097196"]
    mentions = map_document(work, texts)
    assert [(m.entity_id, m.entity_type) for m in mentions] == [
        ("doi:10.7717/peerj.4375", DOI),
        ("doi:10.1101/097196", CITED_DOI),
    ]


def test_map_document_tolerates_missing_and_partial_metadata() -> None:
    assert map_document(None, []) == []
    odd = {"authors": [{"name": "No Ids", "institutions": [{"name": "Nowhere"}]}], "extra": 1}
    assert map_document(odd, ["no identifiers here"]) == []
