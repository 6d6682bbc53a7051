from __future__ import annotations

from urllib.parse import unquote

import pytest

from ingest_ray.adapters.doi import bare_doi, doi_path, looks_like_doi, openalex_work_id

SICI_ANGLE = "10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-O"
SICI_BRACKETS = "10.1890/0012-9658(2006)87[2832:TIOPMA]2.0.CO;2"


def test_doi_path_encodes_angle_brackets_and_semicolon_of_sici_doi() -> None:
    path = doi_path(SICI_ANGLE)
    assert path == "10.1002/(sici)1097-4571(199806)49:8%3C693::aid-asi4%3E3.0.co%3B2-o"
    assert unquote(path) == SICI_ANGLE.lower()


def test_doi_path_encodes_square_brackets() -> None:
    path = doi_path(SICI_BRACKETS)
    assert path == "10.1890/0012-9658(2006)87%5B2832:tiopma%5D2.0.co%3B2"
    assert not set(path) & set("[]<>;# ?")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://doi.org/10.7554/eLife.01567", "10.7554/elife.01567"),
        ("doi:10.1101/097196", "10.1101/097196"),
        (" 10.1023/A:1007154515475 ", "10.1023/a:1007154515475"),
    ],
)
def test_bare_doi_strips_prefix_and_lowercases(raw: str, expected: str) -> None:
    assert bare_doi(raw) == expected


def test_doi_path_escapes_percent_and_hash() -> None:
    assert doi_path("10.1234/a%b#c?d") == "10.1234/a%25b%23c%3Fd"


@pytest.mark.parametrize(
    ("value", "ok"),
    [("10.1101/097196", True), ("10.000/nodata", True), ("W123", False), ("10.1101", False)],
)
def test_looks_like_doi_checks_shape(value: str, ok: bool) -> None:
    assert looks_like_doi(value) is ok


def test_openalex_work_id_accepts_url_and_lowercase() -> None:
    assert openalex_work_id("https://openalex.org/W2741809807") == "W2741809807"
    assert openalex_work_id("w42") == "W42"
    with pytest.raises(ValueError, match="not an OpenAlex work id"):
        openalex_work_id("A5048491430")
