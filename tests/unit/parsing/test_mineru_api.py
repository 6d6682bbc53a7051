"""MineruClient against a loopback stand-in of ``mineru-api``: the tasks API and ``/file_parse``,
a failing task, a busy server (503), an unreachable one, and what the requests carry."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.parsing.errors import (
    MineruRequestError,
    MineruTaskFailedError,
    MineruTimeoutError,
    MineruUnavailableError,
)
from ingest_ray.parsing.mineru_api import MineruClient
from ingest_ray.parsing.parsers import MineruApiParser
from ingest_ray.parsing.settings import ParseSettings
from tests.unit.parsing.mineru_server import CONTENT_LIST, FakeMineru, serve_mineru
from tests.unit.parsing.pdfs import make_pdf


def _settings(url: str, **overrides: Any) -> ParseSettings:
    return ParseSettings(mode="api", mineru_url=url, poll_interval_s=0.01, **overrides)


def _parse(settings: ParseSettings, pdf: Path) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        client = MineruClient(settings)
        try:
            return await client.parse(pdf)
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "paper.pdf"
    path.write_bytes(make_pdf([["A Study of Things"]]))
    return path


def test_mineru_client_runs_a_task_to_completion(pdf: Path) -> None:
    with serve_mineru() as server:
        items = _parse(_settings(server.url), pdf)
    assert items == CONTENT_LIST
    methods = [r[0] + " " + r[1].split("/")[1] for r in server.requests]
    assert methods[0] == "POST tasks"
    assert methods.count("GET tasks") >= 3  # polled through pending and processing
    assert server.requests[-1][1].endswith("/result")


def test_mineru_client_sends_the_pdf_and_mineru_form_options(pdf: Path) -> None:
    with serve_mineru() as server:
        _parse(_settings(server.url, mineru_backend="vlm-auto-engine", max_pages=40), pdf)
    (name, data), form = server.uploads[0], server.forms[0]
    assert name == "paper.pdf" and data == pdf.read_bytes()
    assert form["backend"] == ["vlm-auto-engine"]
    assert form["return_content_list"] == ["true"]
    assert form["response_format_zip"] == ["false"]
    assert form["lang_list"] == ["en"]
    assert form["end_page_id"] == ["39"]


def test_mineru_client_uses_file_parse_when_asked(pdf: Path) -> None:
    with serve_mineru(FakeMineru(content_list_as_string=False)) as server:
        items = _parse(_settings(server.url, mineru_api_style="file_parse"), pdf)
    assert items == CONTENT_LIST
    assert server.requests == [("POST", "/file_parse")]


def test_mineru_client_raises_a_permanent_error_for_a_failed_task(pdf: Path) -> None:
    with (
        serve_mineru(FakeMineru(fail_task=True)) as server,
        pytest.raises(MineruTaskFailedError) as info,
    ):
        _parse(_settings(server.url), pdf)
    assert "CUDA out of memory" in str(info.value)
    assert not info.value.retryable
    assert not any(path.endswith("/result") for _, path in server.requests)


@pytest.mark.parametrize("style", ["tasks", "file_parse"])
def test_mineru_client_raises_a_retryable_error_on_503(pdf: Path, style: str) -> None:
    with (
        serve_mineru(FakeMineru(busy=True)) as server,
        pytest.raises(MineruUnavailableError) as info,
    ):
        _parse(_settings(server.url, mineru_api_style=style), pdf)
    assert info.value.retryable
    assert info.value.retry_after == 7.0
    assert "maximum capacity" in str(info.value)


def test_mineru_client_gives_up_on_a_task_after_its_deadline(pdf: Path) -> None:
    with (
        serve_mineru(FakeMineru(polls_before_done=10_000)) as server,
        pytest.raises(MineruTimeoutError) as info,
    ):
        _parse(_settings(server.url, mineru_task_timeout_s=0.1), pdf)
    assert info.value.retryable


@pytest.mark.parametrize("style", ["tasks", "file_parse"])
def test_mineru_client_treats_a_4xx_answer_as_permanent(pdf: Path, style: str) -> None:
    with (
        serve_mineru(FakeMineru(reject_upload=True)) as server,
        pytest.raises(MineruRequestError) as info,
    ):
        _parse(_settings(server.url, mineru_api_style=style), pdf)
    assert not info.value.retryable
    assert "400" in str(info.value) and "Unknown file suffix" in str(info.value)


def test_mineru_client_reports_an_unreachable_server_as_retryable(pdf: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MineruUnavailableError) as info:
        _parse(_settings(f"http://127.0.0.1:{port}"), pdf)
    assert info.value.retryable


def test_mineru_client_checks_health() -> None:
    async def go(url: str) -> dict[str, Any]:
        client = MineruClient(_settings(url))
        try:
            return await client.health()
        finally:
            await client.aclose()

    with serve_mineru() as server:
        assert asyncio.run(go(server.url))["status"] == "healthy"


def test_mineru_api_parser_probes_then_returns_the_servers_content_list(pdf: Path) -> None:
    async def go(url: str) -> Any:
        parser = MineruApiParser(_settings(url))
        try:
            return await parser.parse(pdf)
        finally:
            await parser.aclose()

    with serve_mineru() as server:
        result = asyncio.run(go(server.url))
    assert result.parser == "mineru-api"
    assert result.pages == 1
    assert result.content_list == CONTENT_LIST
