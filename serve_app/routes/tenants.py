"""``GET /tenants``: how the caller's tenant fares in the scheduler; and the admission note of a
job (why it waits), from the snapshot the Dispatcher publishes in Redis every second."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest_ray.auth import Scope
from ingest_ray.config import Settings
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.base import Job
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.effects import work_item_from_job
from ingest_ray.runtime.sources import SourceMap
from ingest_ray.states import JobStatus
from ingest_ray.tenants import AdmissionSnapshot, SourceStats, parse_limits, parse_snapshot
from serve_app.auth import authorize, context
from serve_app.context import ApiContext
from serve_app.routes import model_response
from serve_app.schemas import AdmissionNote, TenantView

_MAPS: dict[int, tuple[Catalog, SourceMap]] = {}


async def _snapshot(ctx: ApiContext) -> AdmissionSnapshot | None:
    key = RedisKeys(ctx.settings.redis_prefix).admission(ctx.settings.runtime_name)
    try:
        raw = await ctx.redis.get(key)
    except (RedisError, OSError):
        return None
    return None if raw is None else parse_snapshot(raw)


def _source_map(settings: Settings) -> tuple[Catalog, SourceMap]:
    found = _MAPS.get(id(settings))
    if found is None:
        found = _MAPS[id(settings)] = (builtin_catalog(settings), SourceMap.from_settings(settings))
    return found


def _next_source(settings: Settings, job: Job) -> str | None:
    catalog, sources = _source_map(settings)
    try:
        item = work_item_from_job(job, catalog)
    except Exception:  # a pipeline this replica does not know: no source to name
        return None
    if item is None:
        return None
    return sources.next_source(item, catalog.pipeline(item.pipeline).stages[item.stage_index])


async def admission_note(ctx: ApiContext, job: Job) -> AdmissionNote | None:
    """Why ``job`` waits, when it is queued or between stages and the Dispatcher said why."""
    if job.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
        return None
    snapshot = await _snapshot(ctx)
    if snapshot is None:
        return None
    source = _next_source(ctx.settings, job)
    if job.status is JobStatus.QUEUED:
        reason = snapshot.note_for(job.tenant_id, source)
    else:  # a started job is never held back by its tenant's limits, only by a source
        reason = snapshot.note_for("", source)
    return AdmissionNote(waiting=reason is not None, reason=reason)


def _sources(snapshot: AdmissionSnapshot) -> list[SourceStats]:
    named = [s for s in snapshot.sources.values() if not s.source.startswith("host:")]
    hosts = [s for s in snapshot.sources.values() if s.source.startswith("host:")]
    if hosts:
        total = SourceStats(
            source="host:*", rate_per_s=sum(h.rate_per_s for h in hosts),
            waiting=sum(h.waiting for h in hosts), tokens=sum(h.tokens for h in hosts),
            next_token_in_s=None, granted=sum(h.granted for h in hosts),
            throttled=sum(h.throttled for h in hosts),
        )  # fmt: skip
        named.append(total)
    return sorted(named, key=lambda s: s.source)


async def tenant_stats(request: Request) -> Response:
    """``GET /tenants``: the caller's tenant only (others are counted, not named)."""
    principal = await authorize(request, Scope.JOBS_READ)
    ctx = context(request)
    tenant = principal.tenant_id
    settings = ctx.settings
    limits = settings.tenant_limits.get(tenant, settings.tenant_default)
    try:
        raw: Any = await ctx.redis.hget(RedisKeys(settings.redis_prefix).tenant_limits, tenant)
    except (RedisError, OSError):
        raw = None
    stored = parse_limits(tenant, raw) if raw is not None else None
    snapshot = await _snapshot(ctx)
    view = TenantView(
        tenant_id=tenant, runtime=settings.runtime_name,
        updated_at=snapshot.at if snapshot else None, limits=stored or limits,
        stats=snapshot.tenants.get(tenant) if snapshot else None,
        active_tenants=sum(1 for t in snapshot.tenants.values() if t.waiting or t.in_flight)
        if snapshot else 0,
        sources=_sources(snapshot) if snapshot else [], backlog=snapshot.backlog if snapshot else 0,
    )  # fmt: skip
    return model_response(view)


ROUTES = [Route("/tenants", tenant_stats, methods=["GET"])]
