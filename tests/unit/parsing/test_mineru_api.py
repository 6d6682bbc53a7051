"""MineruClient against the loopback stand-in: both API generations and their faults (busy,
5xx, failed, partial and cancelled tasks, malformed bodies, timeouts, an unreachable server),
and what the requests carry. The happy paths of MinerU 4.x run against MinerU's own server code
in tests/integration/mineru; MinerU 2.x/3.x (which cannot be installed next to 4.x) only here.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.parsing.errors import (
    MineruRequestError,
    MineruResultError,
    MineruTaskCanceledError,
    MineruTaskFailedError,
    MineruTimeoutError,
    MineruUnavailableError,
)
from ingest_ray.parsing.mineru_api import MineruClient
from ingest_ray.parsing.parsers import MineruApiParser
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import FileOutcome, Upload
from tests.unit.parsing.mineru_server import CONTENT_LIST, FakeMineru, serve_mineru, wait_until
from tests.unit.parsing.pdfs import make_pdf


def _settings(url: str, **overrides: Any) -> ParseSettings:
    return ParseSettings(mode="api", mineru_url=url, poll_interval_s=0.01, **overrides)


def _run(settings: ParseSettings, call: Any) -> Any:
    async def go() -> Any:
        client = MineruClient(settings)
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _parse(settings: ParseSettings, pdf: Path) -> list[dict[str, Any]]:
    return _run(settings, lambda c: c.parse(pdf))  # type: ignore[no-any-return]


def _parse_files(settings: ParseSettings, pdfs: Sequence[Path]) -> list[FileOutcome]:
    uploads = [Upload(f"f{i:03d}.pdf", p) for i, p in enumerate(pdfs)]
    return _run(settings, lambda c: c.parse_files(uploads))  # type: ignore[no-any-return]


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "paper.pdf"
    path.write_bytes(make_pdf([["A Study of Things"]]))
    return path


@pytest.fixture
def pdf3(tmp_path: Path) -> Path:
    path = tmp_path / "three.pdf"
    path.write_bytes(make_pdf([["one"], ["two"], ["three"]]))
    return path


# --- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (FakeMineru(generation="v1"), "v1"),
        (FakeMineru(generation="legacy"), "tasks"),
        (FakeMineru(generation="v1", openapi=False), "v1"),
        (FakeMineru(generation="legacy", openapi=False), "tasks"),
    ],
)
def test_mineru_client_detects_the_api_generation(state: FakeMineru, expected: str) -> None:
    with serve_mineru(state) as server:
        assert _run(_settings(server.url), lambda c: c.generation()) == expected
        assert _run(_settings(server.url, mineru_api_style="file_parse"), lambda c: c.generation())


def test_mineru_client_detects_once_per_client(pdf: Path) -> None:
    async def twice(client: MineruClient) -> None:
        await client.parse(pdf)
        await client.parse(pdf)

    with serve_mineru(FakeMineru(generation="v1", polls_before_done=0)) as server:
        _run(_settings(server.url), twice)
    assert [p for _, p in server.requests].count("/openapi.json") == 1


# --- MinerU 4.x /v1 -------------------------------------------------------------------------


def test_mineru_client_v1_submits_polls_and_reads_the_middle_json(pdf3: Path) -> None:
    with serve_mineru(FakeMineru(generation="v1")) as server:
        items = _parse(_settings(server.url, mineru_tier="basic"), pdf3)
    assert [i["page_idx"] for i in items] == [0, 0, 1, 2]
    assert items[0] == {"type": "text", "text": "Upload f000.pdf", "text_level": 1,
                        "bbox": [100, 100, 900, 150], "page_idx": 0}  # fmt: skip
    posts = [p for m, p in server.requests if m == "POST"]
    assert posts == ["/v1/tasks"]
    assert server.queries[0] == {
        "ocr_mode": ["auto"], "output_formats": ["middle_json"], "tier": ["basic"],
    }  # fmt: skip
    polls = [p for m, p in server.requests if m == "GET" and p.startswith("/v1/tasks/")]
    assert len(polls) >= 3 and polls[-1].endswith("/result")


def test_mineru_client_v1_partial_keeps_the_files_that_parsed(pdf: Path) -> None:
    state = FakeMineru(generation="v1", fail_files=frozenset({"f001.pdf"}))
    with serve_mineru(state) as server:
        first, second = _parse_files(_settings(server.url), [pdf, pdf])
    assert isinstance(first, list) and first[0]["text"] == "Upload f000.pdf"
    assert isinstance(second, MineruTaskFailedError) and not second.retryable
    assert server.tasks[next(iter(server.tasks))]["status"] == "partial"


@pytest.mark.parametrize(
    ("state", "error", "retryable"),
    [
        (FakeMineru(generation="v1", fail_task=True), MineruTaskFailedError, False),
        (FakeMineru(generation="v1", fail_task=True, fail_code="engine_dead"),
         MineruUnavailableError, True),
        (FakeMineru(generation="v1", cancel_task=True), MineruTaskCanceledError, True),
    ],
)  # fmt: skip
def test_mineru_client_v1_maps_failed_and_canceled_tasks(
    pdf: Path, state: FakeMineru, error: type[Exception], retryable: bool
) -> None:
    with serve_mineru(state) as server, pytest.raises(error) as info:
        _parse(_settings(server.url), pdf)
    assert info.value.retryable is retryable  # type: ignore[attr-defined]
    assert not any(p.endswith("/result") for _, p in server.requests)


def test_mineru_client_v1_cancels_a_task_it_gives_up_on(pdf: Path) -> None:
    state = FakeMineru(generation="v1", polls_before_done=10_000)
    with serve_mineru(state) as server, pytest.raises(MineruTimeoutError) as info:
        _parse(_settings(server.url, mineru_task_timeout_s=0.1), pdf)
    assert info.value.retryable
    assert wait_until(lambda: "DELETE" in [m for m, _ in server.requests])
    assert next(iter(server.tasks.values()))["status"] == "canceled"


def test_mineru_client_v1_cancels_when_the_caller_is_cancelled(pdf: Path) -> None:
    async def go(url: str) -> None:
        client = MineruClient(_settings(url))
        call = asyncio.ensure_future(client.parse(pdf))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await client.aclose()

    with serve_mineru(FakeMineru(generation="v1", polls_before_done=10_000)) as server:
        asyncio.run(go(server.url))
    assert ("DELETE", f"/v1/tasks/{next(iter(server.tasks))}") in server.requests


def test_mineru_client_v1_cancel_and_status_one_by_one(pdf: Path) -> None:
    async def go(client: MineruClient) -> tuple[str, str]:
        api = client.v1()
        task_id = await api.submit([Upload("f000.pdf", pdf)])
        await api.cancel(task_id)
        await api.cancel(task_id)  # already terminal: MinerU answers 409, nothing raised
        return task_id, (await api.status(task_id))["status"]

    with serve_mineru(FakeMineru(generation="v1", polls_before_done=10_000)) as server:
        task_id, status = _run(_settings(server.url), go)
    assert status == "canceled" and task_id.startswith("job_")


@pytest.mark.parametrize("generation", ["v1", "legacy"])
def test_mineru_client_rejects_a_malformed_result(pdf: Path, generation: str) -> None:
    state = FakeMineru(generation=generation, malformed=True)  # type: ignore[arg-type]
    with serve_mineru(state) as server, pytest.raises(MineruResultError) as info:
        _parse(_settings(server.url), pdf)
    assert not info.value.retryable


# --- MinerU 2.x/3.x -------------------------------------------------------------------------


def test_mineru_client_runs_a_legacy_task_to_completion(pdf: Path) -> None:
    with serve_mineru() as server:
        items = _parse(_settings(server.url, mineru_api_style="tasks"), pdf)
    assert items == CONTENT_LIST
    methods = [r[0] + " " + r[1].split("/")[1] for r in server.requests]
    assert methods[0] == "POST tasks"
    assert methods.count("GET tasks") >= 3  # polled through pending and processing
    assert server.requests[-1][1].endswith("/result")


def test_mineru_client_sends_the_pdf_and_legacy_form_options(pdf: Path) -> None:
    with serve_mineru() as server:
        _parse(_settings(server.url, mineru_backend="vlm-auto-engine", max_pages=40), pdf)
    (name, data), form = server.uploads[0], server.forms[0]
    assert name == "f000.pdf" and data == pdf.read_bytes()
    assert form["backend"] == ["vlm-auto-engine"]
    assert form["return_content_list"] == ["true"]
    assert form["response_format_zip"] == ["false"]
    assert form["lang_list"] == ["en"]
    assert form["end_page_id"] == ["39"]


def test_mineru_client_legacy_points_vlm_http_client_at_the_vlm_server(pdf: Path) -> None:
    vlm = "http://127.0.0.1:30000/"
    with serve_mineru() as server:
        _parse(_settings(server.url, mineru_vlm_url=vlm), pdf)
    assert server.forms[0]["backend"] == ["vlm-http-client"]
    assert server.forms[0]["server_url"] == [vlm]


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


@pytest.mark.parametrize(
    ("generation", "style"), [("legacy", "tasks"), ("legacy", "file_parse"), ("v1", "v1")]
)
def test_mineru_client_raises_a_retryable_error_on_503(
    pdf: Path, generation: str, style: str
) -> None:
    state = FakeMineru(generation=generation, busy=True)  # type: ignore[arg-type]
    with serve_mineru(state) as server, pytest.raises(MineruUnavailableError) as info:
        _parse(_settings(server.url, mineru_api_style=style), pdf)
    assert info.value.retryable
    assert info.value.retry_after == 7.0


def test_mineru_client_gives_up_on_a_task_after_its_deadline(pdf: Path) -> None:
    with (
        serve_mineru(FakeMineru(polls_before_done=10_000)) as server,
        pytest.raises(MineruTimeoutError) as info,
    ):
        _parse(_settings(server.url, mineru_task_timeout_s=0.1), pdf)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("generation", "style"), [("legacy", "tasks"), ("legacy", "file_parse"), ("v1", "v1")]
)
def test_mineru_client_treats_a_4xx_answer_as_permanent(
    pdf: Path, generation: str, style: str
) -> None:
    state = FakeMineru(generation=generation, reject_upload=True)  # type: ignore[arg-type]
    with serve_mineru(state) as server, pytest.raises(MineruRequestError) as info:
        _parse(_settings(server.url, mineru_api_style=style), pdf)
    assert not info.value.retryable
    assert "400" in str(info.value)


def test_mineru_client_reports_an_unreachable_server_as_retryable(pdf: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MineruUnavailableError) as info:
        _parse(_settings(f"http://127.0.0.1:{port}"), pdf)
    assert info.value.retryable


@pytest.mark.parametrize("generation", ["v1", "legacy"])
def test_mineru_client_checks_health(generation: str) -> None:
    state = FakeMineru(generation=generation)  # type: ignore[arg-type]
    with serve_mineru(state) as server:
        assert _run(_settings(server.url), lambda c: c.health())["status"] in ("ok", "healthy")
        server.down = True
        with pytest.raises(MineruUnavailableError):
            _run(_settings(server.url, mineru_api_style="v1"), lambda c: c.health())


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
