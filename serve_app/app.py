"""Assembly of the job API: the Starlette app and its Ray Serve deployment.

``build_app(settings)`` gives a plain ASGI app (tests run it in-process); ``deployment`` is the
bound Serve application (``serve run serve_app.app:deployment``) whose replicas each build the
app from the environment's settings, or from the settings passed to ``ApiDeployment.bind``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ingest_ray.config import Settings
from serve_app.context import ApiContext
from serve_app.errors import EXCEPTION_HANDLERS
from serve_app.openapi import build_openapi
from serve_app.routes import events, health, jobs, ops, tenants
from serve_app.settings import ApiSettings


def build_app(settings: Settings | None = None, api: ApiSettings | None = None) -> Starlette:
    """The job API as a Starlette app; its clients open at start-up and close at shutdown."""
    core = settings if settings is not None else Settings()
    api_settings = api if api is not None else ApiSettings()
    document = build_openapi()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx = ApiContext.open(core, api_settings)
        app.state.ctx = ctx
        app.state.registry = health.registry_for(ctx)
        try:
            yield
        finally:
            await ctx.aclose()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes = [
        *jobs.ROUTES,
        *events.ROUTES,
        *health.ROUTES,
        *ops.ROUTES,
        *tenants.ROUTES,
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        Mount("/static", StaticFiles(directory=health.STATIC_DIR, check_dir=False), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)


class ApiReplica:
    """One stateless replica: the app reads the ledger and the event streams from Redis."""

    def __init__(
        self, settings: dict[str, Any] | None = None, api: dict[str, Any] | None = None
    ) -> None:
        # plain dicts travel into the replica; its environment fills in the rest
        self._settings = Settings(**(settings or {}))
        self._api = ApiSettings(**(api or {}))

    def __serve_build_asgi_app__(self) -> ASGIApp:
        """Called by Serve on the replica, after ``__init__``."""
        return build_app(self._settings, self._api)


#: the Serve deployment (``ApiDeployment.options(num_replicas=...)`` to scale)
ApiDeployment = serve.deployment(name="ingest-ray-api", max_ongoing_requests=1000)(
    serve.ingress()(ApiReplica)
)


def api_application(
    settings: dict[str, Any] | None = None,
    api: dict[str, Any] | None = None,
    *,
    replicas: int = 1,
) -> Any:
    """A bound Serve application with explicit setting overrides (``model_dump()`` dicts; keep
    secrets as ``SecretStr``, i.e. not ``mode="json"``, which masks them)."""
    cpus = ApiSettings(**(api or {})).replica_num_cpus
    options = ApiDeployment.options(num_replicas=replicas, ray_actor_options={"num_cpus": cpus})
    return options.bind(settings, api)


#: ``serve run serve_app.app:deployment`` (settings from the environment)
deployment = ApiDeployment.bind()
