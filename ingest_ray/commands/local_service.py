"""Everything a local user needs, in one process: what ``ingest-ray up`` runs.

Started in order, each piece registering how to stop it: the stack (Kafka and Redis, unless
they already answer), a local Ray with its dashboard, the IngestWorker (runtime and Kafka
ingress), the MappingWorker, and the job API with its dashboard on Ray Serve (deployed before
the workers, so the stage pools cannot take its CPU). ``stop`` undoes it: Serve first, then the
IngestWorker drains, then the MappingWorker, then Ray (every process of its session is ended),
then the services this run started, and only those.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis

from ingest_ray import local_ray
from ingest_ray.commands.common import port_free, require_port
from ingest_ray.config import Settings
from ingest_ray.errors import StackError
from ingest_ray.kafka.health import check_kafka
from ingest_ray.local_key import LocalKey, local_key
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.ports import LOOPBACK
from ingest_ray.stack.launcher import LocalStack
from ingest_ray.stack.services import Service
from ingest_ray.workers.base import Worker
from ingest_ray.workers.ingest import IngestWorker
from ingest_ray.workers.mapping import MappingWorker

Echo = Callable[[str], None]


@dataclass
class Addresses:
    """Where the running pieces answer."""

    api: str = ""
    ray_dashboard: str | None = None
    metrics: str | None = None
    kafka: str = ""
    redis: str = ""
    #: services this run started (the others were already running and are left alone)
    started: list[str] = field(default_factory=list)


class LocalService:
    """The whole local service; ``start`` then ``stop`` (also on a failed start)."""

    def __init__(
        self, settings: Settings, *, host: str, port: int, replicas: int = 1, echo: Echo
    ) -> None:
        self.settings = settings
        self.host, self.port, self.replicas = host, port, replicas
        self.echo = echo
        self.addresses = Addresses(kafka=settings.kafka_bootstrap_servers, redis=settings.redis_url)
        self.workers: list[Worker] = []
        self.key: LocalKey | None = None
        self._exit = contextlib.ExitStack()

    def start(self) -> None:
        """Bring every piece up, in order; on failure, what started is stopped again."""
        require_port(self.host, self.port, "the job API", "give --port or INGEST_RAY_API_PORT")
        if self.settings.metrics_port > 0 and not port_free(LOOPBACK, self.settings.metrics_port):
            self.echo(f"metrics port {self.settings.metrics_port} is taken: using a free one")
            self.settings = self.settings.model_copy(update={"metrics_port": 0})
        try:
            self._stack()
            session = local_ray.start(self.settings, namespace="ingest-ray")
            self._exit.callback(local_ray.stop)
            self.addresses.ray_dashboard = session.dashboard_url
            self._serve()  # first, so its replica is placed before the stage pools grow
            self._workers()
            self._exit.callback(_stop_serve)  # last in, first out: Serve stops first
            self.key = local_key(self.settings)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything this run started, newest first."""
        self._exit.close()

    # --- the pieces -------------------------------------------------------------------------

    def _stack(self) -> None:
        missing = [s for s in self._local_stack().services if not _answers(s, self.settings)]
        if not missing:
            self.echo("Kafka and Redis already answer: using them")
            return
        stack = self._local_stack()
        stack.services = tuple(s for s in stack.services if s.name in {m.name for m in missing})
        not_local = [s.name for s in stack.services if not _is_loopback(s, self.settings)]
        if not_local:
            raise StackError(f"{', '.join(not_local)} does not answer at the configured address")
        self._exit.callback(_stop_services, stack, self.echo)
        stack.up(timeout=180.0, echo=self.echo)
        self.addresses.started = [s.name for s in stack.services]

    def _local_stack(self) -> LocalStack:
        kafka = urlsplit(f"//{self.settings.kafka_bootstrap_servers.split(',')[0]}").port or 9092
        redis_port = urlsplit(self.settings.redis_url).port or 6379
        return LocalStack.from_settings(
            self.settings, kafka_port=kafka, controller_port=kafka + 1, redis_port=redis_port
        )

    def _workers(self) -> None:
        catalog = builtin_catalog(self.settings)
        pid = os.getpid()
        ingest = IngestWorker(self.settings, catalog, name=f"ingest-up-{pid}")
        ingest.start()
        # the mapping worker's own metrics go to a free port (the configured one is taken)
        quiet = -1 if self.settings.metrics_port < 0 else 0
        mapping_settings = self.settings.model_copy(update={"metrics_port": quiet})
        mapping = MappingWorker(mapping_settings, catalog, name=f"mapping-up-{pid}")
        try:
            mapping.start()
        finally:
            # LIFO: Serve stops first, then the IngestWorker drains, then the MappingWorker
            self._exit.callback(_stop_worker, mapping, 10.0)
            self._exit.callback(_stop_worker, ingest, self.settings.drain_grace_s)
        self.workers = [ingest, mapping]
        if ingest.metrics_port:
            self.addresses.metrics = f"http://{LOOPBACK}:{ingest.metrics_port}/metrics"

    def _serve(self) -> None:
        from serve_app import server  # noqa: PLC0415 - Ray Serve is heavy: only when serving
        from serve_app.settings import ApiSettings  # noqa: PLC0415

        server.start(self.settings, ApiSettings(), host=self.host, port=self.port,
                     replicas=self.replicas)  # fmt: skip
        self.addresses.api = f"http://{self.host}:{self.port}/"


def _answers(service: Service, settings: Settings) -> bool:
    if service.name == "kafka":
        return check_kafka(settings.kafka_bootstrap_servers, timeout=3.0, topics=()).brokers > 0
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=3)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _is_loopback(service: Service, settings: Settings) -> bool:
    raw = settings.kafka_bootstrap_servers if service.name == "kafka" else settings.redis_url
    host = urlsplit(raw if "://" in raw else f"//{raw.split(',')[0]}").hostname
    return host in (LOOPBACK, "localhost")


def _stop_worker(worker: Worker, grace_s: float) -> None:
    worker.stop(grace_s=grace_s)


def _stop_serve() -> None:
    import ray  # noqa: PLC0415

    from serve_app import server  # noqa: PLC0415

    if ray.is_initialized():
        server.stop()


def _stop_services(stack: LocalStack, echo: Echo) -> None:
    stack.down(echo=echo)
