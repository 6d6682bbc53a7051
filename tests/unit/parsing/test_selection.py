"""Which parser the settings pick (MinerU in-process only when importable and allowed), and the
settings themselves (environment names, limits)."""

from __future__ import annotations

import pickle

import pytest

from ingest_ray.errors import ConfigurationError
from ingest_ray.parsing.inprocess import mineru_available
from ingest_ray.parsing.parsers import (
    CpuParser,
    MineruApiParser,
    MineruInProcessParser,
    choose_parser,
    parser_from_settings,
)
from ingest_ray.parsing.settings import ParseSettings

URL = "http://127.0.0.1:8000"


def _yes() -> bool:
    return True


def _no() -> bool:
    return False


@pytest.mark.parametrize(
    ("mode", "url", "importable", "expected"),
    [
        ("auto", None, False, "pdfium"),
        ("auto", None, True, "mineru"),
        ("auto", URL, True, "mineru-api"),
        ("auto", URL, False, "mineru-api"),
        ("cpu", URL, True, "pdfium"),
        ("api", URL, True, "mineru-api"),
        ("inprocess", URL, True, "mineru"),
    ],
)
def test_choose_parser_follows_mode_url_and_package(
    mode: str, url: str | None, importable: bool, expected: str
) -> None:
    settings = ParseSettings(mode=mode, mineru_url=url)
    assert choose_parser(settings, mineru_importable=_yes if importable else _no) == expected


def test_choose_parser_refuses_inprocess_without_the_package() -> None:
    with pytest.raises(ConfigurationError) as info:
        choose_parser(ParseSettings(mode="inprocess"), mineru_importable=_no)
    assert "mineru package" in str(info.value)


def test_choose_parser_refuses_api_without_a_url() -> None:
    with pytest.raises(ConfigurationError):
        choose_parser(ParseSettings(mode="api"), mineru_importable=_yes)


def test_parser_from_settings_builds_the_chosen_parser() -> None:
    assert isinstance(parser_from_settings(ParseSettings(), mineru_importable=_no), CpuParser)
    assert isinstance(
        parser_from_settings(ParseSettings(), mineru_importable=_yes), MineruInProcessParser
    )
    api = parser_from_settings(ParseSettings(mineru_url=URL), mineru_importable=_no)
    assert isinstance(api, MineruApiParser)


def test_mineru_is_not_installed_in_this_environment() -> None:
    # the CPU parser is what runs here; the in-process mode needs the package and a GPU box
    assert mineru_available() is False


def test_parse_settings_read_their_own_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_PARSE_MODE", "cpu")
    monkeypatch.setenv("INGEST_RAY_PARSE_MINERU_URL", URL)
    monkeypatch.setenv("INGEST_RAY_PARSE_MAX_PAGES", "12")
    monkeypatch.setenv("INGEST_RAY_PARSE_MEMORY_MB", "512")
    monkeypatch.setenv("INGEST_RAY_MODE", "api")  # too generic a name: not ours
    settings = ParseSettings()
    assert (settings.mode, settings.max_pages, settings.memory_mb) == ("cpu", 12, 512)
    assert str(settings.mineru_url).startswith(URL)


def test_parse_settings_validate_and_pickle() -> None:
    with pytest.raises(ValueError, match="mode"):
        ParseSettings(mode="gpu")
    with pytest.raises(ValueError, match="max_pages"):
        ParseSettings(max_pages=0)
    settings = ParseSettings(mineru_url=URL, timeout_s=5)
    assert pickle.loads(pickle.dumps(settings)) == settings
