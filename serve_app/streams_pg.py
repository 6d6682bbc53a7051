"""Async reads of a job's events from the PostgreSQL ledger, woken by ``LISTEN/NOTIFY``.

The same public methods as :class:`serve_app.streams.EventReader` (``head``, ``after``), plus
:meth:`PgEventReader.wait`: every ledger write commits ``NOTIFY {schema}_events,
'{job_id}:{seq}'``, and one listening connection per replica wakes the streams waiting on that
job, so an SSE loop sleeps until there is something new instead of polling. While the listening
connection is down (PostgreSQL restarting), ``wait`` degrades to a short sleep, so a stream
keeps going by polling until the listener has reconnected by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ingest_ray.errors import ServiceUnavailableError
from ingest_ray.ledger import pg_sql as q
from ingest_ray.ledger.base import JobEvent
from ingest_ray.states import JobStatus

log = logging.getLogger(__name__)
_RECONNECT_MAX_S = 5.0


class PgEventReader:
    """Job heads and events on the replica's asyncio PostgreSQL pool, and NOTIFY wake-ups."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        *,
        poll_s: float = 0.5,
        pool_max: int = 8,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 30.0,
        ensure_schema: Callable[[], object] | None = None,
    ) -> None:
        self.dsn = dsn
        self.channel = f"{schema}_events"
        self.poll_s = poll_s
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(connect_timeout_s)),
            "options": f"-c search_path={schema} -c TimeZone=UTC"
            f" -c statement_timeout={int(statement_timeout_s * 1000)}",
            "application_name": "ingest-ray-api-events",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        self._pool = AsyncConnectionPool(
            dsn,
            kwargs=self._connect_kwargs,
            min_size=1,
            max_size=pool_max,
            timeout=2 * connect_timeout_s,
            open=False,
            name="api-events",
        )
        self._ensure_schema = ensure_schema
        self._opened = False
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = False

    @classmethod
    def from_settings(
        cls, settings: Any, *, poll_s: float, ensure_schema: Callable[[], object] | None = None
    ) -> PgEventReader:
        """Build from :class:`ingest_ray.config.Settings`."""
        return cls(
            settings.postgres_dsn,
            settings.postgres_ledger_schema,
            poll_s=poll_s,
            pool_max=settings.postgres_pool_max,
            connect_timeout_s=settings.postgres_connect_timeout_s,
            statement_timeout_s=settings.postgres_statement_timeout_s,
            ensure_schema=ensure_schema,
        )

    async def _open(self) -> None:
        if self._opened:
            return
        if self._ensure_schema is not None:  # the ledger migrates (or checks) on first use
            await asyncio.to_thread(self._ensure_schema)
        await self._pool.open(wait=False)
        self._opened = True

    async def _fetch(self, query: Any, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        await self._open()
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(query, params)
                return await cur.fetchall()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise ServiceUnavailableError(f"PostgreSQL ledger unavailable: {exc}") from exc

    async def head(self, job_id: str) -> tuple[str, JobStatus] | None:
        """The job's tenant and status, or ``None`` when there is no such job."""
        rows = await self._fetch("SELECT tenant_id, status FROM jobs WHERE job_id = %s", (job_id,))
        if not rows:
            return None
        return rows[0]["tenant_id"], JobStatus(rows[0]["status"])

    async def after(self, job_id: str, seq: int, *, count: int = 100) -> list[JobEvent]:
        """Events with ``seq`` greater than ``seq``, oldest first."""
        rows = await self._fetch(q.GET_EVENTS, (job_id, seq, count))
        return [q.event_from_row(r) for r in rows]

    async def _latest(self, job_id: str) -> int:
        rows = await self._fetch("SELECT event_seq FROM jobs WHERE job_id = %s", (job_id,))
        return int(rows[0]["event_seq"]) if rows else 0

    async def wait(self, job_id: str, after_seq: int, timeout: float) -> bool:
        """Return once the job may have an event after ``after_seq``: True when NOTIFY said
        so (or it already has one), False after ``timeout`` seconds of silence. Without a
        listening connection it sleeps ``min(timeout, poll_s)`` and answers True."""
        self._start_listener()
        if not self._listening:
            await asyncio.sleep(min(timeout, self.poll_s))
            return True
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, set()).add(woken)
        try:
            # registered first, then checked: an event committed in between is not missed
            if await self._latest(job_id) > after_seq:
                return True
            await asyncio.wait_for(woken, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[job_id]

    @property
    def listening(self) -> bool:
        """Whether the NOTIFY listener is connected (``wait`` polls while it is not)."""
        return self._listening

    def _start_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, **self._connect_kwargs)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._listening, delay = True, 0.2
                    async for note in conn.notifies():
                        self._wake(note.payload.rpartition(":")[0])
            except (psycopg.Error, OSError) as exc:
                log.warning("event listener lost PostgreSQL (%s); reconnecting", exc)
            self._listening = False
            self._wake_all()  # waiters re-read; NOTIFYs sent while away are not replayed
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)

    def _wake(self, job_id: str) -> None:
        for woken in self._waiters.get(job_id, ()):
            if not woken.done():
                woken.set_result(None)

    def _wake_all(self) -> None:
        for job_id in list(self._waiters):
            self._wake(job_id)

    async def aclose(self) -> None:
        """Stop listening and close the pool."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self._listening = False
        await self._pool.close()
