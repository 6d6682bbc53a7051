"""The event stream's end-of-job race, provoked on purpose, and the ``gap`` after a trimmed
stream, against the real app (uvicorn on loopback) and Redis.

The race: the stream reads no new events, the job then turns terminal, and only then does the
stream look at the job's status. The stream used to end right there, without the job's last
events. ``RacyReader`` makes exactly that interleaving happen every time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from ingest_ray.auth import ApiKeyStore
from ingest_ray.ledger.base import JobEvent, NewJob, TransitionRequest
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.states import JobStatus
from serve_app.app import build_app
from serve_app.streams import EventReader
from tests.conftest import Services
from tests.integration.api.conftest import api_settings, cleanup, make_settings
from tests.integration.api.sse import events
from tests.integration.api.test_cli_http import serving

Q, P, C = JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED


class RacyReader(EventReader):
    """Runs ``between`` after the first empty read of a job, before the stream goes on."""

    def __init__(self, inner: EventReader, between: Callable[[str], None]) -> None:
        self._inner = inner
        self._between = between
        self.fired: set[str] = set()

    async def head(self, job_id: str) -> tuple[str, JobStatus] | None:
        return await self._inner.head(job_id)

    async def wait(self, job_id: str, after_seq: int, timeout: float) -> bool:
        return await self._inner.wait(job_id, after_seq, timeout)

    async def after(self, job_id: str, seq: int, *, count: int = 100) -> list[JobEvent]:
        found = await self._inner.after(job_id, seq, count=count)
        if not found and job_id not in self.fired:
            self.fired.add(job_id)
            await asyncio.to_thread(self._between, job_id)
        return found


@dataclass
class Local:
    url: str
    ledger: RedisLedger
    key: str
    app: Starlette

    @contextmanager
    def racing(self, between: Callable[[str], None]) -> Iterator[RacyReader]:
        """The app reads events through a RacyReader while the block runs."""
        ctx = self.app.state.ctx
        racy = RacyReader(ctx.events, between)
        ctx.events = racy
        try:
            yield racy
        finally:
            ctx.events = racy._inner


@pytest.fixture(scope="module")
def local(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    settings = make_settings(services, tmp_path_factory.mktemp("race"))
    store = ApiKeyStore(settings.redis_url, settings.redis_prefix)
    key = store.create("a", "jobs:read jobs:write", "race")[1]
    store.close()
    ledger = RedisLedger(settings.redis_url, prefix=settings.redis_prefix, event_maxlen=10)
    app = build_app(settings, api_settings())
    with serving(app) as url:
        yield Local(url, ledger, key, app)
    ledger.close()
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    cleanup(client, settings.redis_prefix)
    client.close()


def _processing_job(ledger: RedisLedger, text: str) -> str:
    job = NewJob(tenant_id="a", doc_key=f"text:{uuid.uuid4().hex}", pipeline="auto")
    ledger.create(job)
    ledger.transition(TransitionRequest(job.job_id, Q, P, stage="metadata", attempts=1))
    return job.job_id


def _stream(local: Local, job_id: str, after: int | None = None) -> list:
    headers = {"Authorization": f"Bearer {local.key}"}
    if after is not None:
        headers["Last-Event-ID"] = str(after)
    with (
        httpx.Client(base_url=local.url, headers=headers, timeout=30) as c,
        c.stream("GET", f"/jobs/{job_id}/events") as response,
    ):
        assert response.status_code == 200
        return events(response)


def test_events_job_ending_between_read_and_status_check_still_sends_last_events(
    local: Local,
) -> None:
    def finish(job_id: str) -> None:
        local.ledger.transition(TransitionRequest(job_id, P, P, stage="chunk", attempts=1))
        local.ledger.transition(TransitionRequest(job_id, P, C))

    job_id = _processing_job(local.ledger, "race")
    with local.racing(finish) as racy:
        got = _stream(local, job_id, after=2)  # seen so far: created, processing
    assert job_id in racy.fired  # the interleaving did happen
    assert [int(f.id) for f in got] == [3, 4]
    assert got[-1].json()["to_status"] == "completed"


def test_events_resume_older_than_the_cap_gets_a_gap_then_live_events(local: Local) -> None:
    job_id = _processing_job(local.ledger, "gap")
    for n in range(300):  # the stream keeps about the newest 10 (+ Redis' trimming slack)
        local.ledger.transition(TransitionRequest(job_id, P, P, stage=f"s{n % 7}", attempts=1))
    oldest = int(local.ledger.events(job_id, after=0, count=1)[0].seq)
    assert oldest > 5  # trimmed: seq 5 is gone from the stream

    def finish(job_id: str) -> None:
        local.ledger.transition(TransitionRequest(job_id, P, C))

    with local.racing(finish):  # the job ends while the client is connected
        got = _stream(local, job_id, after=4)
    gap, *live = got
    assert gap.event == "gap" and gap.id == "302"
    body = gap.json()
    assert body["missed_after"] == 4 and body["resume_after"] == 302
    assert [e["seq"] for e in body["job"]["history"]] == list(range(1, 303))
    assert body["job"]["status"] == "processing"
    assert [int(f.id) for f in live] == [303]
    assert live[0].json()["to_status"] == "completed"

    again = _stream(local, job_id, after=4)  # resumed after the end: the gap says it all
    assert [f.event for f in again] == ["gap"]
    assert again[0].json()["job"]["status"] == "completed" and again[0].id == "303"
