"""The MinerU client and the ``mineru`` stage against MinerU 4.x's own ``/v1`` task router
(``mineru.parser.task_api.build_task_router``) on loopback, with the fixture PDFs: MinerU's HTTP
layer, validation, envelopes and status handling, its parser entry point and post-processing;
only the model inference is the pdfium one. Then against MinerU's complete API server
(``create_app``) on its ``flash`` tier, which needs no model at all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.parsing.errors import (
    EncryptedPdfError,
    MineruRequestError,
    MineruTaskCanceledError,
    MineruTaskFailedError,
    MineruTimeoutError,
    MineruUnavailableError,
)
from ingest_ray.parsing.middle import content_list_from_middle
from ingest_ray.parsing.mineru_api import MineruClient
from ingest_ray.parsing.mineru_http import json_object
from ingest_ray.parsing.parsers import MineruApiParser
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import Upload
from tests.integration.mineru import fake_model
from tests.integration.mineru.conftest import Router, pdf, shape
from tests.integration.mineru.serving import serve

FOUR = "sample-pdflatex-4pages"
SIXTEEN = "article-peerj-cs-2017-vespa-ccby4-16pages"
HINDAWI = "article-hindawi-rehab-res-pract-2010-ccby-two-column-6pages"


def _settings(url: str, **overrides: Any) -> ParseSettings:
    base: dict[str, Any] = {"mode": "api", "mineru_url": url, "poll_interval_s": 0.05}
    return ParseSettings(**{**base, "mineru_tier": "basic", **overrides})


def _with_client(settings: ParseSettings, call: Any) -> Any:
    async def go() -> Any:
        client = MineruClient(settings)
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_the_client_reads_v1_from_minerus_openapi_document(router: Router) -> None:
    assert _with_client(_settings(router.url), lambda c: c.generation()) == "v1"


def test_one_v1_task_parses_several_fixture_pdfs(router: Router) -> None:
    files = [pdf(FOUR), pdf("sample-trivial"), pdf(HINDAWI)]
    uploads = [Upload(f"f{i:03d}.pdf", p) for i, p in enumerate(files)]
    before, calls = router.store.parses, len(fake_model.CALLS)
    outcomes = _with_client(_settings(router.url), lambda c: c.parse_files(uploads))
    assert router.store.parses - before == 3  # one task, three files, each through MinerU
    assert [pages for pages, _ in fake_model.CALLS[calls:]] == [4, 1, 6]
    assert all(isinstance(o, list) and o for o in outcomes)
    assert {i["page_idx"] for i in outcomes[2]} == set(range(6))
    job = list(router.store.jobs.values())[-1].response
    assert (job.status, job.tier, job.output_formats) == ("completed", "basic", ["middle_json"])


def test_our_content_list_matches_minerus_own_renderer(router: Router) -> None:
    from mineru.render import render_content_list
    from mineru.types import MiddleJson

    async def middle(client: MineruClient) -> dict[str, Any]:
        api = client.v1()
        task_id = await api.submit([Upload("f000.pdf", pdf(HINDAWI))])
        await api.wait(task_id)
        result = await client.http.request("GET", f"/v1/tasks/{task_id}/result")
        return json_object(result)["files"][0]["content"]["middle_json"]  # type: ignore[no-any-return]

    document = _with_client(_settings(router.url), middle)
    theirs = render_content_list(MiddleJson.from_dict(document))
    ours = content_list_from_middle(document)
    assert len(ours) > 20
    assert shape(ours) == shape(theirs)


def test_a_file_mineru_cannot_read_makes_the_task_partial(router: Router, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.4\nthis is not a PDF at all\n" * 20)
    uploads = [Upload("f000.pdf", pdf(FOUR)), Upload("f001.pdf", garbage)]
    good, bad = _with_client(_settings(router.url), lambda c: c.parse_files(uploads))
    assert isinstance(good, list) and {i["page_idx"] for i in good} == {0, 1, 2, 3}
    assert isinstance(bad, MineruTaskFailedError) and not bad.retryable
    assert list(router.store.jobs.values())[-1].response.status == "partial"


def test_minerus_validation_refuses_an_empty_file_as_permanent(
    router: Router, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(MineruRequestError) as info:
        _with_client(_settings(router.url), lambda c: c.parse(empty))
    assert "400" in str(info.value) and "Empty files are not supported" in str(info.value)
    assert not info.value.retryable


def test_an_unknown_task_is_a_lost_task_worth_retrying(router: Router) -> None:
    with pytest.raises(MineruUnavailableError) as info:
        _with_client(_settings(router.url), lambda c: c.v1().status("job_gone"))
    assert "404" in str(info.value) and "job_not_found" in str(info.value)


def test_a_cancelled_task_ends_canceled_and_is_retryable(router: Router, slow_model: None) -> None:
    async def go(client: MineruClient) -> tuple[str, Exception]:
        api = client.v1()
        task_id = await api.submit([Upload("f000.pdf", pdf(FOUR))])
        await asyncio.sleep(0.5)
        await api.cancel(task_id)
        job = await api.wait(task_id)
        failed = [_file_outcome(job)]
        return job["status"], failed[0]

    status, error = _with_client(_settings(router.url), go)
    assert status == "canceled"
    assert isinstance(error, MineruTaskCanceledError) and error.retryable


def _file_outcome(job: dict[str, Any]) -> Exception:
    from ingest_ray.parsing.mineru_v1 import _file_error

    return _file_error(job["task_id"], job["status"], job["files"][0])


def test_a_task_past_its_deadline_is_cancelled_on_the_server(
    router: Router, slow_model: None
) -> None:
    settings = _settings(router.url, mineru_task_timeout_s=0.5)
    with pytest.raises(MineruTimeoutError) as info:
        _with_client(settings, lambda c: c.parse(pdf(FOUR)))
    assert info.value.retryable
    job = list(router.store.jobs.values())[-1].response
    assert job.status == "canceled"


def test_the_api_parser_splits_a_long_pdf_and_merges_it_in_page_order(router: Router) -> None:
    async def go(settings: ParseSettings) -> Any:
        parser = MineruApiParser(settings)
        try:
            return await parser.parse(pdf(SIXTEEN))
        finally:
            await parser.aclose()

    calls = len(fake_model.CALLS)
    split = asyncio.run(go(_settings(router.url, mineru_split_pages=6)))
    assert sorted(p for p, _ in fake_model.CALLS[calls:]) == [5, 5, 6]  # three ranges
    whole = asyncio.run(go(_settings(router.url, mineru_split_pages=0)))
    pages = [i["page_idx"] for i in split.content_list]
    assert pages == sorted(pages) and set(pages) == set(range(16))
    assert split.pages == whole.pages == 16 and split.failed_pages == ()
    assert [i.get("text") for i in split.content_list] == [
        i.get("text") for i in whole.content_list
    ]


def test_the_api_parser_fails_only_the_bad_document_of_a_batch(router: Router) -> None:
    async def go() -> Any:
        parser = MineruApiParser(_settings(router.url))
        try:
            return await parser.parse_many(
                [pdf(FOUR), pdf("sample-libreoffice-password"), pdf("sample-trivial")]
            )
        finally:
            await parser.aclose()

    four, encrypted, trivial = asyncio.run(go())
    assert isinstance(encrypted, EncryptedPdfError)  # refused by the probe, never sent
    assert (four.pages, trivial.pages) == (4, 1)
    job = list(router.store.jobs.values())[-1].response
    assert [f.status for f in job.files] == ["completed", "completed"]  # one task, two files


# --- MinerU's complete server, flash tier (its own text extraction, no model) --------------


@pytest.fixture(scope="module")
def mineru_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from mineru.parser.api_server import create_app

    app = create_app(upload_dir=str(tmp_path_factory.mktemp("mineru-api")), tier="flash")
    with serve(app) as url:
        yield url


def test_the_client_against_minerus_complete_api_server(mineru_server: str) -> None:
    settings = _settings(mineru_server, mineru_tier="flash", mineru_parse_method="txt")
    assert _with_client(settings, lambda c: c.health())["status"] == "ok"
    uploads = [Upload("f000.pdf", pdf(FOUR)), Upload("f001.pdf", pdf("sample-latex-multi"))]
    four, multi = _with_client(settings, lambda c: c.parse_files(uploads))
    assert isinstance(four, list) and {i["page_idx"] for i in four} == {0, 1, 2, 3}
    assert isinstance(multi, list) and {i["page_idx"] for i in multi} == {0, 1, 2}
    assert json.dumps(four).count("Hello, here is some text") >= 4


def test_minerus_server_detected_without_its_openapi_document(
    mineru_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_openapi(client: MineruClient) -> str:
        original = client.http.request

        async def request(method: str, path: str, **kwargs: Any) -> Any:
            if path == "/openapi.json":
                raise MineruRequestError("404 (as with MINERU_API_ENABLE_FASTAPI_DOCS=0)")
            return await original(method, path, **kwargs)

        monkeypatch.setattr(client.http, "request", request)
        return await client.generation()

    assert _with_client(_settings(mineru_server), no_openapi) == "v1"
