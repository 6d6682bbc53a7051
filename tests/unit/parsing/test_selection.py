"""Which parser the settings pick (MinerU in-process only when it can run models and the mode
allows it), and the settings themselves (environment names, limits)."""

from __future__ import annotations

import pickle

import pytest

from ingest_ray.errors import ConfigurationError
from ingest_ray.parsing.inprocess import mineru_available, mineru_runtime_available
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


def _runs(_: ParseSettings) -> bool:
    return True


def _cannot(_: ParseSettings) -> bool:
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
    chosen = choose_parser(
        settings,
        mineru_importable=_yes if importable else _no,
        mineru_runnable=_runs if importable else _cannot,
    )
    assert chosen == expected


def test_choose_parser_refuses_inprocess_without_the_package() -> None:
    with pytest.raises(ConfigurationError) as info:
        choose_parser(ParseSettings(mode="inprocess"), mineru_importable=_no)
    assert "mineru package" in str(info.value)


def test_choose_parser_refuses_api_without_a_url() -> None:
    with pytest.raises(ConfigurationError):
        choose_parser(ParseSettings(mode="api"), mineru_importable=_yes)


def test_parser_from_settings_builds_the_chosen_parser() -> None:
    cpu = parser_from_settings(ParseSettings(), mineru_runnable=_cannot)
    assert isinstance(cpu, CpuParser)
    assert isinstance(
        parser_from_settings(ParseSettings(), mineru_runnable=_runs), MineruInProcessParser
    )
    api = parser_from_settings(ParseSettings(mineru_url=URL), mineru_runnable=_cannot)
    assert isinstance(api, MineruApiParser)


def test_the_mineru_base_package_alone_is_not_picked_by_auto() -> None:
    # the tests install MinerU without torch: its server code and entry point, not its models
    assert mineru_available() is True
    assert mineru_runtime_available(ParseSettings()) is False
    assert choose_parser(ParseSettings()) == "pdfium"
    # a VLM server to call is enough to run MinerU here
    assert mineru_runtime_available(ParseSettings(mineru_vlm_url="http://127.0.0.1:30000"))


def test_parse_settings_read_their_own_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_PARSE_MODE", "cpu")
    monkeypatch.setenv("INGEST_RAY_PARSE_MINERU_URL", URL)
    monkeypatch.setenv("INGEST_RAY_PARSE_MAX_PAGES", "12")
    monkeypatch.setenv("INGEST_RAY_PARSE_MEMORY_MB", "512")
    monkeypatch.setenv("INGEST_RAY_MODE", "api")  # too generic a name: not ours
    settings = ParseSettings()
    assert (settings.mode, settings.max_pages, settings.memory_mb) == ("cpu", 12, 512)
    assert str(settings.mineru_url).startswith(URL)


def test_parse_settings_take_a_comma_separated_server_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGEST_RAY_PARSE_MINERU_URLS", "http://gpu-a:8000/, http://gpu-b:8000")
    monkeypatch.setenv("INGEST_RAY_PARSE_MINERU_IN_FLIGHT", "3")
    settings = ParseSettings()
    assert settings.servers == ["http://gpu-a:8000", "http://gpu-b:8000"]
    assert settings.mineru_in_flight == 3
    assert ParseSettings(mineru_urls=[], mineru_url=URL).servers == [URL]


def test_parse_settings_keep_within_minerus_limits() -> None:
    with pytest.raises(ValueError, match="mineru_batch_files"):
        ParseSettings(mineru_batch_files=101)  # MinerU 4.x takes 100 files per task
    with pytest.raises(ValueError, match="mineru_tier"):
        ParseSettings(mineru_tier="ultra")
    with pytest.raises(ValueError, match="mineru_in_flight"):
        ParseSettings(mineru_in_flight=0)


def test_parse_settings_validate_and_pickle() -> None:
    with pytest.raises(ValueError, match="mode"):
        ParseSettings(mode="gpu")
    with pytest.raises(ValueError, match="max_pages"):
        ParseSettings(max_pages=0)
    settings = ParseSettings(mineru_url=URL, timeout_s=5)
    assert pickle.loads(pickle.dumps(settings)) == settings
