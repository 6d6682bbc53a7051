"""What the dashboard needs besides jobs: ``/info``, ``/stats/charts``, ``/search`` and the
tenant's dead letters (``/deadletters``, ``/deadletters/replay``). Every route authorises and is
confined to the caller's tenant; the work is done by ``ingest_ray`` in a thread."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest_ray import dlq, stats
from ingest_ray.auth import Principal, Scope
from ingest_ray.deadletters import LetterKind, LetterView
from ingest_ray.documents import document_label
from ingest_ray.errors import IngestError
from ingest_ray.events import IngestRequest, MappingRequest, decode
from ingest_ray.index.base import SearchHit
from ingest_ray.index.search import run_search
from ingest_ray.index.settings import IndexSettings
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.base import JobFilter
from ingest_ray.stages.factories import section
from ingest_ray.states import JobStatus
from ingest_ray.workers.base import WorkerHealth, judged
from serve_app.auth import authorize, context
from serve_app.body import read_json
from serve_app.context import ApiContext
from serve_app.errors import ConflictError, NotFoundError
from serve_app.ops_schemas import (
    Charts,
    DeadLetterOut,
    DeadLetterPage,
    DeadLetterQuery,
    Info,
    MinuteOut,
    PoolOut,
    ReplayOut,
    ReplayRequest,
    SearchHitOut,
    SearchPage,
    SearchQuery,
)
from serve_app.routes import model_response
from serve_app.routes.jobs import validate

#: how many of the tenant's newest completed / queued jobs the charts count
CHART_SAMPLE = 1000
CHART_MINUTES = 30


async def info(request: Request) -> Response:
    """``GET /info``: the caller's tenant and scopes, the upload cap, the pipelines."""
    principal = await authorize(request, Scope.JOBS_READ)
    ctx = context(request)
    return model_response(
        Info(
            tenant_id=principal.tenant_id,
            scopes=sorted(s.value for s in principal.scopes),
            max_upload_mb=ctx.api.max_upload_mb,
            max_upload_bytes=ctx.api.max_upload_bytes,
            pipelines=ctx.pipelines,
        )
    )


async def heartbeats(ctx: ApiContext) -> list[WorkerHealth]:
    """Every worker's last heartbeat (``alive`` false once it is stale)."""
    try:
        raw = await ctx.redis.hgetall(RedisKeys(ctx.settings.redis_prefix).workers)
    except (RedisError, OSError):
        return []
    return judged(json.loads(value) for value in raw.values())


def _job_charts(ctx: ApiContext, tenant_id: str) -> Charts:
    now = datetime.now(UTC)
    done = ctx.ledger.list_jobs(
        JobFilter(tenant_id=tenant_id, status=JobStatus.COMPLETED), limit=CHART_SAMPLE
    )
    queued = ctx.ledger.list_jobs(
        JobFilter(tenant_id=tenant_id, status=JobStatus.QUEUED), limit=CHART_SAMPLE
    )
    minutes = stats.completed_per_minute(done.items, now, CHART_MINUTES)
    return Charts(
        at=now,
        completed_per_minute=[MinuteOut(minute=m.minute, count=m.count) for m in minutes],
        queue_by_priority={str(p): n for p, n in stats.queue_by_priority(queued.items).items()},
        pools=[],
        sampled=bool(done.next_cursor or queued.next_cursor),
    )


async def charts(request: Request) -> Response:
    """``GET /stats/charts``: completions per minute and queue depth by priority (the
    caller's), and the stage pools' sizes and utilisation (from the workers' heartbeats)."""
    principal = await authorize(request, Scope.JOBS_READ)
    ctx = context(request)
    figures = await run_in_threadpool(_job_charts, ctx, principal.tenant_id)
    pools = [PoolOut(**asdict(p)) for p in stats.pool_figures(await heartbeats(ctx))]
    return model_response(figures.model_copy(update={"pools": pools}))


def _search(ctx: ApiContext, tenant_id: str, query: SearchQuery) -> SearchPage:
    index = section(ctx.settings, "index", IndexSettings)
    hits = run_search(index, query.q, query.k, tenant_id, embedder=ctx.embedder())
    jobs: dict[str, str | None] = {}
    for doc_key in dict.fromkeys(h.doc_key for h in hits):
        page = ctx.ledger.list_jobs(JobFilter(tenant_id=tenant_id, doc_key=doc_key), limit=1)
        jobs[doc_key] = page.items[0].job_id if page.items else None
    return SearchPage(query=query.q, hits=[_hit(h, jobs.get(h.doc_key)) for h in hits])


def _hit(h: SearchHit, job_id: str | None) -> SearchHitOut:
    return SearchHitOut(
        doc_key=h.doc_key, job_id=job_id, document=h.title or h.doi or h.doc_key, title=h.title,
        doi=h.doi, chunk_id=h.chunk_id, section_path=list(h.section_path),
        page_start=h.page_start, page_end=h.page_end, snippet=h.snippet, score=h.score,
    )  # fmt: skip


async def search(request: Request) -> Response:
    """``GET /search?q=``: hybrid search over the caller's indexed documents."""
    principal = await authorize(request, Scope.JOBS_READ)
    query = validate(SearchQuery, dict(request.query_params), "query")
    page = await run_in_threadpool(_search, context(request), principal.tenant_id, query)
    return model_response(page)


def _letters(ctx: ApiContext, tenant_id: str, query: DeadLetterQuery) -> DeadLetterPage:
    found = dlq.list_letters(ctx.settings, last=query.last, since=query.since, tenant_id=tenant_id)
    found = [x for x in found if query.kind is None or x.kind == query.kind]
    ids = list(dict.fromkeys(x.subject.job_id for x in found if x.subject.job_id))
    names = {
        job.job_id: document_label(job)
        for job in ctx.ledger.get_many(ids)
        if job is not None and job.tenant_id == tenant_id
    }
    items = [_letter(ctx, x, names) for x in found]
    return DeadLetterPage(items=items, last=query.last, since=query.since)


def _letter(ctx: ApiContext, letter: LetterView, names: dict[str, str]) -> DeadLetterOut:
    replayed = ctx.replayer.replayed(letter.event_id)
    return DeadLetterOut.of(
        letter, replayed=replayed, document=names.get(letter.subject.job_id or "")
    )


async def dead_letters(request: Request) -> Response:
    """``GET /deadletters``: the caller's dead letters in a bounded window of the topic."""
    principal = await authorize(request, Scope.JOBS_READ)
    query = validate(DeadLetterQuery, dict(request.query_params), "query")
    page = await run_in_threadpool(_letters, context(request), principal.tenant_id, query)
    return model_response(page)


def _owned(letter: LetterView, principal: Principal) -> bool:
    """A letter the caller may replay: its tenant's, and (for a message) a request of its own."""
    if letter.subject.tenant_id != principal.tenant_id:
        return False
    if letter.kind == LetterKind.JOB.value:
        return True
    try:
        event = decode(letter.value)
    except IngestError:
        return True  # unreadable: the replay refuses it with the reason
    return isinstance(event, IngestRequest | MappingRequest) and (
        event.tenant_id == principal.tenant_id
    )


def _replay(ctx: ApiContext, principal: Principal, body: ReplayRequest) -> ReplayOut:
    letter = dlq.letter_at(ctx.settings, body.partition, body.offset)
    if letter is None or not _owned(letter, principal):
        raise NotFoundError(f"no dead letter at {body.partition}:{body.offset}")
    result = ctx.replayer.replay(letter, tenant_id=principal.tenant_id)
    if result.outcome is dlq.Outcome.REFUSED:
        raise ConflictError(result.detail)
    return ReplayOut.of(result.event_id, result.outcome, result.detail)


async def replay(request: Request) -> Response:
    """``POST /deadletters/replay``: replay one of the caller's letters, at most once."""
    principal = await authorize(request, Scope.JOBS_WRITE)
    ctx = context(request)
    body = validate(ReplayRequest, await read_json(request, ctx.api.max_body_bytes), "body")
    return model_response(await run_in_threadpool(_replay, ctx, principal, body))


ROUTES = [
    Route("/info", info, methods=["GET"]),
    Route("/stats/charts", charts, methods=["GET"]),
    Route("/search", search, methods=["GET"]),
    Route("/deadletters", dead_letters, methods=["GET"]),
    Route("/deadletters/replay", replay, methods=["POST"]),
]
