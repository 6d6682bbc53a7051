"""MinerU in-process: ``MineruInProcessParser`` and the ``mineru`` stage call MinerU 4.x's own
entry point (``mineru.parser.MinerUParser.parse`` with its page-range rewriting, normalisation
and middle JSON) with only the model call replaced, so the adapter from MinerU's output to our
content list runs on real MinerU output. And the vLLM layout: our VLM settings reach MinerU's
own ``vlm-http-client`` (``mineru_vl_utils``), which calls an OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.parsing.errors import (
    EncryptedPdfError,
    MineruTaskFailedError,
    MineruUnavailableError,
)
from ingest_ray.parsing.inprocess import vlm_config
from ingest_ray.parsing.parsers import MineruInProcessParser, parser_from_settings
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import StageInput, StageOutput
from ingest_ray.stages.mineru import MineruStage
from ingest_ray.storage.blobs import FileBlobStore
from tests.integration.mineru import fake_model
from tests.integration.mineru.conftest import pdf

SIXTEEN = "article-peerj-cs-2017-vespa-ccby4-16pages"


def _settings(**overrides: Any) -> ParseSettings:
    return ParseSettings(**{"mode": "inprocess", "mineru_tier": "basic", **overrides})


def _parse_many(settings: ParseSettings, pdfs: list[Path]) -> list[Any]:
    async def go() -> list[Any]:
        parser = MineruInProcessParser(settings)
        try:
            return await parser.parse_many(pdfs)
        finally:
            await parser.aclose()

    return asyncio.run(go())


def test_inprocess_parses_through_minerus_entry_point(pdfium_model: None) -> None:
    parser = parser_from_settings(_settings())
    assert isinstance(parser, MineruInProcessParser)
    calls = len(fake_model.CALLS)
    four, encrypted = _parse_many(
        _settings(), [pdf("sample-pdflatex-4pages"), pdf("sample-libreoffice-password")]
    )
    assert isinstance(encrypted, EncryptedPdfError)  # the probe refuses it before MinerU
    assert fake_model.CALLS[calls:] == [(4, "medium")]  # tier basic = MinerU's "medium" effort
    assert four.parser == "mineru" and four.pages == 4
    assert {i["page_idx"] for i in four.content_list} == {0, 1, 2, 3}
    assert all(0 <= v <= 1000 for i in four.content_list for v in i.get("bbox", []))


def test_inprocess_runs_page_ranges_through_minerus_page_range(pdfium_model: None) -> None:
    calls = len(fake_model.CALLS)
    (split,) = _parse_many(_settings(mineru_split_pages=6, mineru_in_flight=2), [pdf(SIXTEEN)])
    # MinerU cut the PDF itself (page_range "1-6", "7-11", "12-16") and numbered pages 0..15
    assert sorted(p for p, _ in fake_model.CALLS[calls:]) == [5, 5, 6]
    (whole,) = _parse_many(_settings(mineru_split_pages=0), [pdf(SIXTEEN)])
    pages = [i["page_idx"] for i in split.content_list]
    assert pages == sorted(pages) and set(pages) == set(range(16))
    assert [i.get("text") for i in split.content_list] == [
        i.get("text") for i in whole.content_list
    ]


def test_the_stage_runs_minerus_entry_point_in_process(pdfium_model: None, tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    digests = [blobs.put(pdf(n).read_bytes()) for n in ("sample-pdflatex-4pages", "sample-trivial")]
    stage = MineruStage(_settings(), blobs)

    async def go() -> list[Any]:
        try:
            return await stage.run_batch([_job(d) for d in digests])
        finally:
            await stage.aclose()

    results = asyncio.run(go())
    assert all(isinstance(r, StageOutput) for r in results)
    assert [r.data["parser"] for r in results] == ["mineru", "mineru"]
    assert [r.data["pages"] for r in results] == [4, 1]
    assert blobs.get_json(results[0].data["content_sha256"])[0]["page_idx"] == 0


def _job(digest: str) -> StageInput:
    return StageInput(
        job_id=f"job-{digest[:6]}", tenant_id="t", doc_key=f"sha:{digest}", pipeline="two_phase",
        stage="mineru", attempt=1,
        source=DocumentSource(kind=SourceKind.PDF_URL, value="https://example.org/a.pdf"),
        outputs={"pdf_fetch": {"pdf_sha256": digest}},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raised", "expected", "retryable"),
    [
        ("engine", MineruUnavailableError, True),
        ("memory", MineruUnavailableError, True),
        ("value", MineruTaskFailedError, False),
    ],
)
def test_minerus_exceptions_map_to_ours(
    monkeypatch: pytest.MonkeyPatch, raised: str, expected: type[Exception], retryable: bool
) -> None:
    from mineru.backend.analysis.pdf import pipeline
    from mineru.model.vlm.errors import EngineDeadError

    errors = {
        "engine": EngineDeadError("vLLM engine died"),
        "memory": RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        "value": ValueError("unsupported layout"),
    }

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise errors[raised]

    monkeypatch.setattr(pipeline, "analyze_pdf", broken)
    (result,) = _parse_many(_settings(), [pdf("sample-trivial")])
    assert isinstance(result, expected)
    assert result.retryable is retryable  # type: ignore[attr-defined]


# --- vLLM-served VLM (MinerU's vlm-http-client) ---------------------------------------------


class _OpenAiStandIn(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"object": "list", "data": [{"id": "MinerU2.5-2509-1.2B",
                                                       "object": "model"}]}).encode()  # fmt: skip
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def vllm_url() -> Iterator[str]:
    """An OpenAI-compatible server on loopback that answers ``GET /v1/models``, as
    ``vllm serve`` does."""
    _OpenAiStandIn.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAiStandIn)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_vlm_settings_reach_minerus_vlm_http_client(vllm_url: str) -> None:
    from mineru.model.vlm.client import get_vlm_predictor

    settings = _settings(
        mineru_tier="standard", mineru_vlm_url=vllm_url, mineru_vlm_api_key="sk-test"
    )
    config = vlm_config(settings)
    assert config.server_url == vllm_url.removesuffix("v1")  # MinerU drops the /v1 itself
    _predictor, backend = get_vlm_predictor(config)
    assert backend == "http-client"
    # MinerU's client asked the server which model it serves, with our key
    assert ("/v1/models", "Bearer sk-test") in _OpenAiStandIn.seen
    engine = MineruInProcessParser(settings).engine
    assert engine._mineru().vlm_config.server_url == config.server_url
