"""Run the job API on Ray Serve and block (what ``ingest-ray serve`` calls)."""

from __future__ import annotations

import threading
from typing import Any

import ray
from ray import serve

from ingest_ray.config import Settings
from serve_app.app import api_application
from serve_app.settings import ApiSettings

APP_NAME = "ingest-ray-api"


def _overrides(model: Settings | ApiSettings) -> dict[str, Any]:
    # python mode: secrets stay SecretStr (pickled into the replica), not masked as in JSON mode
    return model.model_dump(exclude_unset=True)


def start(settings: Settings, api: ApiSettings, *, host: str, port: int, replicas: int) -> None:
    """Start Serve on ``host:port`` (a local Ray unless ``settings.ray_address``) and deploy."""
    if not ray.is_initialized():
        ray.init(address=settings.ray_address, namespace="ingest-ray", include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    app = api_application(_overrides(settings), _overrides(api), replicas=replicas)
    serve.run(app, name=APP_NAME, route_prefix="/")


def stop() -> None:
    """Remove the API application and shut Serve down."""
    serve.shutdown()  # type: ignore[no-untyped-call]


def run(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    api: ApiSettings | None = None,
) -> None:
    """Start Serve with the API and block until interrupted (Ctrl-C / SIGTERM)."""
    start(settings, api or ApiSettings(), host=host, port=port, replicas=replicas)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
