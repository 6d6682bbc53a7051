"""The Worker base class: start, run, drain, stop, health, metrics — the same for every kind.

``run`` blocks until SIGTERM/SIGINT (or ``ingest-ray worker stop``), then drains: the subclass
stops polling, lets in-flight work finish within the grace period (or hands it back), stores the
offsets of what is done and flushes its producers. While running, the worker publishes a
heartbeat with its health to Redis (``ingest-ray status`` reads it from any machine) and serves
Prometheus metrics on ``/metrics``.
"""

from __future__ import annotations

import abc
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import redis
from prometheus_client import CollectorRegistry, start_http_server

from ingest_ray.config import Settings
from ingest_ray.metrics import RuntimeMetrics, Snapshot, SnapshotCollector
from ingest_ray.stack.process import ManagedProcess

WORKER_MARKER = "worker"


@dataclass
class WorkerHealth:
    """What ``ingest-ray status`` shows for one worker."""

    name: str
    kind: str
    pid: int
    host: str
    alive: bool
    started_at: float
    updated_at: float = 0.0
    lag: int = 0
    in_flight: int = 0
    last_error: str | None = None
    heartbeat_s: float = 2.0
    details: dict[str, Any] = field(default_factory=dict)


def workers_key(settings: Settings) -> str:
    """Redis hash of worker name -> last heartbeat (JSON)."""
    return f"{settings.redis_prefix}workers"


def read_health(settings: Settings) -> list[WorkerHealth]:
    """Every worker's last heartbeat; ``alive`` is false once it is three of its beats (plus
    15 s for a busy machine: a beat asks the worker's actors for figures) old."""
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        raw = client.hgetall(workers_key(settings))
    finally:
        client.close()
    now, out = time.time(), []
    for value in raw.values():
        health = WorkerHealth(**json.loads(value))
        health.alive = health.alive and now - health.updated_at < 3 * health.heartbeat_s + 15
        out.append(health)
    return sorted(out, key=lambda h: h.name)


class Worker(abc.ABC):
    """A long-running process of one kind (ingest, mapping)."""

    kind: ClassVar[str] = "worker"

    def __init__(self, settings: Settings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{self.kind}-{socket.gethostname()}-{os.getpid()}"
        self.metrics = RuntimeMetrics()
        self.registry = CollectorRegistry()
        self.registry.register(SnapshotCollector(self.snapshots))
        self.metrics_port: int | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._started_at = time.time()
        self._redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self._pidfile = ManagedProcess(
            self.name,
            settings.state_dir / "workers",
            settings.state_dir / "workers" / f"{self.name}.log",
        )

    # --- what subclasses provide ----------------------------------------------------------

    @abc.abstractmethod
    def _start(self) -> None:
        """Connect and begin consuming."""

    @abc.abstractmethod
    def drain(self, grace_s: float) -> dict[str, Any]:
        """Stop polling, finish or hand back in-flight work, store offsets, flush producers."""

    @abc.abstractmethod
    def _stop_components(self) -> None:
        """Release everything after :meth:`drain`."""

    def snapshots(self) -> Iterable[Snapshot]:
        """Metric snapshots to serve (the worker's own, plus its actors' in subclasses)."""
        return [self.metrics.snapshot()]

    def health(self) -> WorkerHealth:
        """The worker's current health (subclasses add lag, in-flight and details)."""
        return WorkerHealth(
            name=self.name, kind=self.kind, pid=os.getpid(), host=socket.gethostname(),
            alive=not self._stop.is_set(), started_at=self._started_at,
            updated_at=time.time(), last_error=self.last_error,
            heartbeat_s=self.settings.worker_heartbeat_s,
            details={"metrics_port": self.metrics_port},
        )  # fmt: skip

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start consuming, the heartbeat and the metrics endpoint."""
        self._start()
        if self.settings.metrics_port >= 0:
            server, _ = start_http_server(self.settings.metrics_port, registry=self.registry)
            self.metrics_port = int(server.server_port)
        self._pidfile.adopt(os.getpid(), marker=WORKER_MARKER)
        self._beat(alive=True)
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()

    def request_stop(self, *_: object) -> None:
        """Ask :meth:`run` to drain and stop (signal handlers call this)."""
        self._stop.set()

    def run(self, *, grace_s: float | None = None) -> dict[str, Any]:
        """Start, block until asked to stop, then drain and stop. Returns the drain report."""
        self.start()
        # after start: ray.init installs a SIGTERM handler of its own in the driver process
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)
        while not self._stop.wait(0.5):
            pass
        return self.stop(grace_s=grace_s)

    def stop(self, *, grace_s: float | None = None) -> dict[str, Any]:
        """Drain and release; the heartbeat says not alive."""
        self._stop.set()
        report = self.drain(self.settings.drain_grace_s if grace_s is None else grace_s)
        self._stop_components()
        self._beat(alive=False)
        self._pidfile.pid_path.unlink(missing_ok=True)
        self._redis.close()
        return report

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.worker_heartbeat_s):
            try:
                self._beat(alive=True)
            except Exception as exc:  # a missed beat is visible as staleness, never fatal
                self.last_error = f"heartbeat: {exc}"

    def _beat(self, *, alive: bool) -> None:
        health = self.health()
        health.alive = alive
        self._redis.hset(workers_key(self.settings), self.name, json.dumps(asdict(health)))
