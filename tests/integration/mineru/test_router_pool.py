"""Two MinerU routers (MinerU's own ``/v1`` code, the pdfium model) behind one parser: work goes
to both, one going away is dropped and its work goes to the other, and once it is back on its
port a health check brings it back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ingest_ray.parsing.parsers import MineruApiParser, ParseResult
from ingest_ray.parsing.settings import ParseSettings
from tests.integration.mineru.conftest import pdf
from tests.integration.mineru.serving import serve
from tests.integration.mineru.task_backend import build_app

FILES = ["sample-pdflatex-4pages", "sample-trivial", "sample-latex-multi", "sample-google-doc"]
SETTINGS: dict[str, Any] = {
    "mode": "api", "mineru_tier": "basic", "poll_interval_s": 0.05,
    "mineru_batch_pages": 0, "mineru_in_flight": 1, "mineru_health_interval_s": 1.0,
}  # fmt: skip


def _parses(app: FastAPI) -> int:
    return int(app.state.task_store.parses)


async def _all_parsed(parser: MineruApiParser) -> bool:
    results = await parser.parse_many([pdf(n) for n in FILES])
    return all(isinstance(r, ParseResult) for r in results)


async def _scenario(a_app: FastAPI, b_app: FastAPI) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with serve(b_app) as b_url:
        with serve(a_app) as a_url:
            parser = MineruApiParser(ParseSettings(**SETTINGS, mineru_urls=[a_url, b_url]))
            seen["first"] = await _all_parsed(parser)
            seen["a1"], seen["b1"] = _parses(a_app), _parses(b_app)
        seen["while_down"] = await _all_parsed(parser)  # a is gone: b takes its requests
        seen["b2"], seen["a_up_while_down"] = _parses(b_app), parser.pool.board.servers[a_url].up
        with serve(a_app, port=int(a_url.rsplit(":", 1)[1])):
            await asyncio.sleep(1.1)  # one health interval
            seen["again"] = await _all_parsed(parser)
            seen["a3"], seen["a_up"] = _parses(a_app), parser.pool.board.servers[a_url].up
        await parser.aclose()
    return seen


def test_two_routers_share_the_work_and_a_lost_one_comes_back(
    pdfium_model: None, tmp_path: Path
) -> None:
    a_app, b_app = build_app(tmp_path / "a"), build_app(tmp_path / "b")
    seen = asyncio.run(_scenario(a_app, b_app))
    assert seen["first"] and seen["a1"] >= 1 and seen["b1"] >= 1  # both used
    assert seen["while_down"] and seen["b2"] - seen["b1"] == len(FILES)
    assert seen["a_up_while_down"] is False
    assert seen["again"] and seen["a3"] > seen["a1"] and seen["a_up"]  # back in service
