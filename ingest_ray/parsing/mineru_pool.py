"""Several MinerU servers behind one client: least-loaded routing, ``k`` requests in flight per
server, and health checks that drop a failing server and bring it back.

:class:`ServerBoard` is the pure bookkeeping (an injected clock, no I/O): which servers are up,
what each one holds, which is due a health check. :class:`MineruPool` is the async shell: it
waits for a free slot, probes servers that are due (``GET /v1/health`` or ``/health``), sends
the request to the least-loaded healthy server, and when that server fails as a server (refused
connection, timeout, 5xx, 429) marks it down and sends the request to another one. A server that
is down gets no work until a health check, ``mineru_health_interval_s`` later, finds it well.

The limits hold per process (each ``mineru`` actor has its own pool): with ``P`` actors a server
sees at most ``P * k`` requests at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from ingest_ray.parsing.errors import MineruUnavailableError
from ingest_ray.parsing.mineru_api import MineruClient
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import FileOutcome, Upload

Clock = Callable[[], float]
_HEALTH_TIMEOUT_S = 5.0


@dataclass
class ServerState:
    """What the board knows of one server."""

    url: str
    in_flight: int = 0
    pages: int = 0
    up: bool = True
    checked_at: float | None = None  # last time it answered well (a health check or a request)
    retry_at: float = 0.0  # when down: the next health check
    checking: bool = False
    requests: int = 0


class ServerBoard:
    """Routing and health state of a set of servers (pure)."""

    def __init__(self, urls: Sequence[str], *, k: int, interval_s: float, clock: Clock) -> None:
        if not urls:
            raise ValueError("ServerBoard needs at least one server")
        self.servers = {url: ServerState(url) for url in urls}
        self.k = k
        self.interval_s = interval_s
        self.clock = clock

    def pick(self, exclude: frozenset[str] = frozenset()) -> str | None:
        """The healthy server with a free slot that holds the fewest pages (then requests)."""
        free = [
            s
            for s in self.servers.values()
            if s.up and s.in_flight < self.k and s.url not in exclude and not s.checking
        ]
        if not free:
            return None
        return min(free, key=lambda s: (s.pages, s.in_flight, s.requests)).url

    def due_checks(self) -> list[str]:
        """Servers to health-check now, claimed for the caller: down ones whose wait is over,
        and idle healthy ones not heard from for ``interval_s`` (busy ones report through
        their requests)."""
        now = self.clock()
        due = []
        for state in self.servers.values():
            if state.checking:
                continue
            stale = state.checked_at is None or now - state.checked_at >= self.interval_s
            if (not state.up and now >= state.retry_at) or (
                state.up and state.in_flight == 0 and stale
            ):
                due.append(state.url)
        for url in due:
            self.servers[url].checking = True
        return due

    def start(self, url: str, pages: int) -> None:
        """A request of ``pages`` pages went to ``url``."""
        state = self.servers[url]
        state.in_flight += 1
        state.pages += pages
        state.requests += 1

    def finish(self, url: str, pages: int) -> None:
        """That request is over (whatever its outcome)."""
        state = self.servers[url]
        state.in_flight -= 1
        state.pages -= pages

    def mark_up(self, url: str) -> None:
        """``url`` answered well."""
        state = self.servers[url]
        state.up, state.checked_at = True, self.clock()

    def mark_down(self, url: str) -> None:
        """``url`` failed: no work for it until a health check after ``interval_s``."""
        state = self.servers[url]
        state.up, state.retry_at = False, self.clock() + self.interval_s

    def all_down(self) -> bool:
        """Whether no server is up."""
        return not any(s.up for s in self.servers.values())

    def next_check_in(self) -> float:
        """Seconds until the earliest health check of a down server."""
        down = [s.retry_at for s in self.servers.values() if not s.up]
        return max(0.0, min(down) - self.clock()) if down else self.interval_s


class MineruPool:
    """Routes requests over the configured MinerU servers (one per actor process)."""

    def __init__(
        self,
        settings: ParseSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        urls = settings.servers
        self.clients = {url: MineruClient(settings, url=url, client=client) for url in urls}
        self.board = ServerBoard(
            urls, k=settings.mineru_in_flight, interval_s=settings.mineru_health_interval_s,
            clock=clock,
        )  # fmt: skip
        self._changed = asyncio.Condition()

    async def parse_files(self, uploads: Sequence[Upload]) -> list[FileOutcome]:
        """Send one request to the least-loaded healthy server; on a server failure, to the
        next healthy one; :class:`MineruUnavailableError` when none is left."""
        pages = sum(u.pages for u in uploads)
        tried: set[str] = set()
        while True:
            url = await self._acquire(pages, frozenset(tried))
            try:
                outcomes = await self.clients[url].parse_files(uploads)
            except MineruUnavailableError:
                self.board.mark_down(url)
                tried.add(url)
                if all(u in tried or not s.up for u, s in self.board.servers.items()):
                    raise
                continue
            finally:
                await self._release(url, pages)
            if any(isinstance(o, MineruUnavailableError) for o in outcomes):
                self.board.mark_down(url)  # its engine died under this request
            else:
                self.board.mark_up(url)
            return outcomes

    async def check(self, url: str) -> bool:
        """Health-check one server now; up or down by its answer."""
        state = self.board.servers[url]
        state.checking = True
        try:
            await asyncio.wait_for(self.clients[url].health(), _HEALTH_TIMEOUT_S)
        except Exception:  # any failed check (error answer, timeout, garbage) means down
            self.board.mark_down(url)
            return False
        else:
            self.board.mark_up(url)
            return True
        finally:
            state.checking = False
            async with self._changed:
                self._changed.notify_all()

    async def aclose(self) -> None:
        """Close the servers' HTTP clients."""
        for client in self.clients.values():
            await client.aclose()

    async def _acquire(self, pages: int, exclude: frozenset[str]) -> str:
        while True:
            due = self.board.due_checks()
            if due:
                await asyncio.gather(*(self.check(url) for url in due))
            url = self.board.pick(exclude)
            if url is not None:
                self.board.start(url, pages)
                return url
            if self.board.all_down() or all(
                u in exclude or not s.up for u, s in self.board.servers.items()
            ):
                wait = self.board.next_check_in()
                raise MineruUnavailableError(
                    f"no MinerU server is healthy ({', '.join(self.board.servers)})",
                    retry_after=wait,
                )
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.board.interval_s)

    async def _release(self, url: str, pages: int) -> None:
        self.board.finish(url, pages)
        async with self._changed:
            self._changed.notify_all()
