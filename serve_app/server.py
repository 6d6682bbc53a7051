"""Run the job API on Ray Serve and block (what ``ingest-ray serve`` calls)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray
from ray import serve

from ingest_ray import local_ray
from ingest_ray.config import Settings
from ingest_ray.signals import StopSignals
from serve_app.app import api_application
from serve_app.settings import ApiSettings

APP_NAME = "ingest-ray-api"


def _overrides(model: Settings | ApiSettings) -> dict[str, Any]:
    # python mode: secrets stay SecretStr (pickled into the replica), not masked as in JSON mode
    return model.model_dump(exclude_unset=True)


def start(settings: Settings, api: ApiSettings, *, host: str, port: int, replicas: int) -> None:
    """Start Serve on ``host:port`` (a local Ray unless ``settings.ray_address``) and deploy."""
    local_ray.start(settings, namespace="ingest-ray")
    serve.start(http_options={"host": host, "port": port})
    app = api_application(_overrides(settings), _overrides(api), replicas=replicas)
    serve.run(app, name=APP_NAME, route_prefix="/")


def stop() -> None:
    """Remove the API application and shut Serve down (Ray stays up)."""
    serve.shutdown()  # type: ignore[no-untyped-call]


def run(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    api: ApiSettings | None = None,
    *,
    on_ready: Callable[[str], None] = lambda _: None,
) -> None:
    """Start Serve with the API and block until SIGINT/SIGTERM; then stop Serve and end the
    local Ray this process started, every one of its processes included. ``on_ready`` hears
    one line per address once the API answers. A signal during the start raises
    :class:`KeyboardInterrupt` (after the same clean-up)."""
    stop_signals = StopSignals().install()
    try:
        start(settings, api or ApiSettings(), host=host, port=port, replicas=replicas)
        stop_signals.started()
        on_ready(f"job API and dashboard at http://{host}:{port}/")
        session = local_ray.current()
        if session is not None and session.dashboard_url:
            on_ready(f"Ray dashboard at {session.dashboard_url}")
        stop_signals.wait()
    finally:
        try:
            if ray.is_initialized():
                stop()
        finally:
            local_ray.stop()
