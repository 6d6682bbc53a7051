"""Several MinerU servers: the routing board (pure, fake clock), then the pool against loopback
stand-ins: least-loaded routing, ``k`` in flight per server, a failing server dropped and
brought back by health checks, and a clear retryable error when none is left."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ingest_ray.parsing.errors import MineruUnavailableError
from ingest_ray.parsing.mineru_pool import MineruPool, ServerBoard
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import Upload
from tests.unit.parsing.mineru_server import FakeMineru, serve_mineru
from tests.unit.parsing.pdfs import make_pdf


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _board(k: int = 2) -> tuple[ServerBoard, Clock]:
    clock = Clock()
    return ServerBoard(["a", "b", "c"], k=k, interval_s=10.0, clock=clock), clock


def test_board_picks_the_server_holding_the_fewest_pages() -> None:
    board, _ = _board()
    board.start("a", 30)
    board.start("b", 5)
    assert board.pick() == "c"
    board.start("c", 10)
    assert board.pick() == "b"
    assert board.pick(exclude=frozenset({"b"})) == "c"


def test_board_keeps_at_most_k_requests_per_server() -> None:
    board, _ = _board(k=1)
    for url in ("a", "b", "c"):
        board.start(url, 1)
    assert board.pick() is None
    board.finish("b", 1)
    assert board.pick() == "b"


def test_board_drops_a_failing_server_and_checks_it_again_later() -> None:
    board, clock = _board()
    assert sorted(board.due_checks()) == ["a", "b", "c"]  # never heard from: check first
    for url in ("a", "b", "c"):
        board.servers[url].checking = False
        board.mark_up(url)
    assert board.due_checks() == []
    board.mark_down("a")
    assert board.pick(exclude=frozenset({"b"})) == "c"
    assert board.next_check_in() == 10.0
    clock.now += 10.0
    assert sorted(board.due_checks()) == ["a", "b", "c"]  # a is due; b, c are stale and idle
    board.mark_up("a")
    assert board.servers["a"].up


def test_board_reports_when_every_server_is_down() -> None:
    board, clock = _board()
    for url in ("a", "b", "c"):
        board.mark_down(url)
    assert board.all_down() and board.pick() is None
    clock.now += 4.0
    assert board.next_check_in() == 6.0


# --- the pool against loopback servers ------------------------------------------------------


def _settings(urls: list[str], **overrides: Any) -> ParseSettings:
    base: dict[str, Any] = {
        "mode": "api", "mineru_urls": urls, "poll_interval_s": 0.01, "mineru_api_style": "v1",
        "mineru_health_interval_s": 0.3,
    }  # fmt: skip
    return ParseSettings(**{**base, **overrides})


@pytest.fixture
def upload(tmp_path: Path) -> Upload:
    path = tmp_path / "one.pdf"
    path.write_bytes(make_pdf([["one"], ["two"]]))
    return Upload("f000.pdf", path, 2)


async def _requests(pool: MineruPool, upload: Upload, count: int) -> list[Any]:
    try:
        return await asyncio.gather(*(pool.parse_files([upload]) for _ in range(count)))
    finally:
        await pool.aclose()


def test_pool_spreads_requests_and_keeps_k_in_flight_per_server(upload: Upload) -> None:
    slow = {"generation": "v1", "polls_before_done": 5}
    with serve_mineru(FakeMineru(**slow)) as a, serve_mineru(FakeMineru(**slow)) as b:  # type: ignore[arg-type]
        pool = MineruPool(_settings([a.url, b.url], mineru_in_flight=2))
        results = asyncio.run(_requests(pool, upload, 12))
    assert all(isinstance(r[0], list) for r in results)
    assert len(a.tasks) + len(b.tasks) == 12
    assert len(a.tasks) >= 4 and len(b.tasks) >= 4  # least-loaded: both kept busy
    assert a.most_open <= 2 and b.most_open <= 2  # never more than k at once
    assert max(a.most_open, b.most_open) == 2


def test_pool_drops_a_failing_server_and_brings_it_back(upload: Upload) -> None:
    async def go(pool: MineruPool, a: FakeMineru) -> tuple[int, int]:
        try:
            a.down = True
            for _ in range(4):
                await pool.parse_files([upload])
            down_tasks = len(a.tasks)
            a.down = False
            await asyncio.sleep(0.35)  # one health interval
            for _ in range(4):
                await pool.parse_files([upload])
            return down_tasks, len(a.tasks)
        finally:
            await pool.aclose()

    with (
        serve_mineru(FakeMineru(generation="v1", polls_before_done=0)) as a,
        serve_mineru(FakeMineru(generation="v1", polls_before_done=0)) as b,
    ):
        pool = MineruPool(_settings([a.url, b.url], mineru_in_flight=1))
        while_down, after = asyncio.run(go(pool, a))
    assert while_down == 0 and len(b.tasks) >= 4
    assert after >= 1  # checked again after the interval, found well, used again
    assert ("GET", "/v1/health") in a.requests


def test_pool_sends_a_request_to_another_server_when_one_fails(upload: Upload) -> None:
    with (
        serve_mineru(FakeMineru(generation="v1", busy=True)) as failing,  # healthy, but 503s
        serve_mineru(FakeMineru(generation="v1")) as other,
    ):
        pool = MineruPool(_settings([failing.url, other.url], mineru_health_interval_s=60))
        pool.board.servers[other.url].pages = 10**6  # so the failing one is picked first
        (result,) = asyncio.run(_requests(pool, upload, 1))
    assert isinstance(result[0], list) and len(other.tasks) == 1
    assert ("POST", "/v1/tasks") in failing.requests and not failing.tasks
    assert not pool.board.servers[failing.url].up


def test_pool_with_no_healthy_server_raises_a_retryable_error(upload: Upload) -> None:
    with serve_mineru(FakeMineru(generation="v1", down=True)) as a:
        pool = MineruPool(_settings([a.url], mineru_health_interval_s=30))
        with pytest.raises(MineruUnavailableError) as info:
            asyncio.run(_requests(pool, upload, 1))
    assert info.value.retryable
    assert info.value.retry_after is not None and 25 < info.value.retry_after <= 30
    assert "no MinerU server is healthy" in str(info.value)
