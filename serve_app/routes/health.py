"""Unauthenticated routes: liveness, readiness, Prometheus metrics and the dashboard page."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from ingest_ray.kafka.health import check_kafka
from serve_app.auth import context
from serve_app.context import ApiContext
from serve_app.routes import model_response
from serve_app.routes.ops import heartbeats
from serve_app.schemas import Health, KafkaCheck, Readiness, RedisCheck, WorkerOut

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
_PLACEHOLDER = "<!doctype html><title>ingest-ray</title><p>dashboard not installed</p>"


async def healthz(request: Request) -> Response:
    """Liveness: 200 while the process serves requests."""
    return model_response(Health())


async def _redis_check(ctx: ApiContext) -> RedisCheck:
    try:
        await asyncio.wait_for(ctx.redis.ping(), timeout=ctx.api.ready_timeout_s)
    except (RedisError, OSError, TimeoutError) as exc:
        return RedisCheck(ok=False, error=str(exc) or type(exc).__name__)
    return RedisCheck(ok=True, error=None)


async def _workers(ctx: ApiContext) -> list[WorkerOut]:
    return [
        WorkerOut(
            name=h.name,
            kind=h.kind,
            host=h.host,
            pid=h.pid,
            alive=h.alive,
            updated_at=h.updated_at,
            lag=h.lag,
            in_flight=h.in_flight,
            last_error=h.last_error,
            problems=h.problems,
        )
        for h in await heartbeats(ctx)
    ]


async def readyz(request: Request) -> Response:
    """Readiness: 200 when Redis and Kafka (with the requests topic) answer, else 503."""
    ctx = context(request)
    topics = [ctx.settings.topic_requests]
    kafka = await run_in_threadpool(
        check_kafka,
        ctx.settings.kafka_bootstrap_servers,
        timeout=ctx.api.ready_timeout_s,
        topics=topics,
    )
    result = Readiness(
        ready=False,
        kafka=KafkaCheck(
            ok=kafka.ok,
            brokers=kafka.brokers,
            topics_missing=list(kafka.topics_missing),
            error=kafka.error,
        ),
        redis=await _redis_check(ctx),
        workers=await _workers(ctx),
    )
    ready = result.kafka.ok and result.redis.ok
    return model_response(result.model_copy(update={"ready": ready}), 200 if ready else 503)


class ReplicaCollector(Collector):
    """Leak detectors of this replica: open SSE streams, asyncio tasks, Redis connections."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def collect(self) -> list[Metric]:
        """Current values (read at scrape time)."""
        values = {
            "ingest_ray_api_sse_streams": ("Open SSE streams", self._ctx.open_streams),
            "ingest_ray_api_asyncio_tasks": ("asyncio tasks of the replica's loop", _tasks()),
            "ingest_ray_api_redis_connections_in_use": (
                "Connections of the shared Redis pool lent out", self._ctx.redis_in_use(),
            ),
            "ingest_ray_api_redis_connections_open": (
                "Connections of the shared Redis pool, in use or idle", self._ctx.redis_open(),
            ),
        }  # fmt: skip
        return [GaugeMetricFamily(name, doc, value=v) for name, (doc, v) in values.items()]


def _tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # scraped outside the loop
        return 0


def registry_for(ctx: ApiContext) -> CollectorRegistry:
    """A registry of this replica's own (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReplicaCollector(ctx))
    return registry


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the replica's gauges."""
    registry: CollectorRegistry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def index(request: Request) -> Response:
    """The dashboard page (its data calls carry the user's key)."""
    page = STATIC_DIR / "index.html"
    if page.is_file():
        return FileResponse(page, media_type="text/html")
    return HTMLResponse(_PLACEHOLDER)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/", index, methods=["GET"]),
]
