"""The Worker base class: start, run, drain, stop, health, metrics — the same for every kind.

``run`` blocks until SIGTERM/SIGINT (or ``ingest-ray worker stop``), then drains: the subclass
stops polling, lets in-flight work finish within the grace period (or hands it back), stores the
offsets of what is done and flushes its producers. While running, the worker publishes a
heartbeat with its health to Redis (``ingest-ray status`` reads it from any machine) and to a
file in its state dir (read when Redis itself is away), and serves Prometheus metrics on
``/metrics``. Health tells the truth during a fault: each problem (Redis or Kafka unreachable,
the Dispatcher restarting) is named with how long it has lasted; nothing raises out of a beat.
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
from pathlib import Path
from typing import Any, ClassVar

import redis
from prometheus_client import CollectorRegistry, start_http_server

from ingest_ray.config import Settings
from ingest_ray.errors import ServiceUnavailableError
from ingest_ray.keys import RedisKeys
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
    #: what is wrong right now, e.g. "redis unreachable since 12 s" (empty when healthy)
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Outages:
    """When each dependency stopped answering (for "unreachable since 12 s")."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def down(self, what: str) -> None:
        """``what`` failed now (the first failure starts the clock)."""
        self._since.setdefault(what, time.time())

    def up(self, what: str) -> None:
        """``what`` answered again."""
        self._since.pop(what, None)

    def describe(self) -> list[str]:
        """One line per outage."""
        now = time.time()
        return [f"{what} since {now - t:.0f} s" for what, t in sorted(self._since.items())]


def health_dir(settings: Settings) -> Path:
    """Where workers on this machine keep their pid and last health files."""
    return settings.state_dir / "workers"


def read_health(settings: Settings) -> list[WorkerHealth]:
    """Every worker's last heartbeat from Redis; ``alive`` is false once it is three of its
    beats (plus 15 s for a busy machine) old. Raises ``ServiceUnavailableError`` without Redis."""
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=3)
    try:
        raw = client.hgetall(RedisKeys(settings.redis_prefix).workers)
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"redis unreachable at {settings.redis_url}: {exc}") from exc
    finally:
        client.close()
    return judged(json.loads(value) for value in raw.values())


def read_local_health(settings: Settings) -> list[WorkerHealth]:
    """The last health each worker on this machine wrote to its state dir."""
    beats = []
    for path in health_dir(settings).glob("*.health.json"):
        try:
            beats.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return judged(beats)


def judged(beats: Iterable[dict[str, Any]]) -> list[WorkerHealth]:
    """Heartbeats as health, sorted by name; ``alive`` is false once a beat is three of its
    intervals (plus 15 s for a busy machine) old."""
    now, out = time.time(), []
    for beat in beats:
        health = WorkerHealth(**beat)
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
        self.outages = Outages()
        self._stop = threading.Event()
        self._started_at = time.time()
        self._keys = RedisKeys(settings.redis_prefix)
        self._redis = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5
        )
        run_dir = health_dir(settings)
        self._pidfile = ManagedProcess(self.name, run_dir, run_dir / f"{self.name}.log")
        self._health_file = run_dir / f"{self.name}.health.json"

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
            heartbeat_s=self.settings.worker_heartbeat_s, problems=self.outages.describe(),
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
        """Drain and release; the heartbeat says not alive. Each step runs even if the one
        before failed (a dead Dispatcher must not keep the final heartbeat from being written)."""
        self._stop.set()
        report: dict[str, Any] = {}
        try:
            report = self.drain(self.settings.drain_grace_s if grace_s is None else grace_s)
        except Exception as exc:
            report = {"drain_error": f"{type(exc).__name__}: {exc}"}
        try:
            self._stop_components()
        except Exception as exc:
            report["stop_error"] = f"{type(exc).__name__}: {exc}"
        self._beat(alive=False)
        self._pidfile.pid_path.unlink(missing_ok=True)
        self._redis.close()
        return report

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.worker_heartbeat_s):
            self._beat(alive=True)

    def _beat(self, *, alive: bool) -> None:
        """Write health to Redis and to the local file; never raises."""
        try:
            health = self.health()
        except Exception as exc:  # a broken figure must not stop the beat
            self.last_error = f"health: {type(exc).__name__}: {exc}"
            health = Worker.health(self)
        health.alive = alive
        payload = json.dumps(asdict(health))
        try:
            self._redis.hset(self._keys.workers, self.name, payload)
            self.outages.up("redis unreachable")
        except redis.RedisError:
            self.outages.down("redis unreachable")
            payload = json.dumps({**asdict(health), "problems": self.outages.describe()})
        try:
            self._health_file.parent.mkdir(parents=True, exist_ok=True)
            self._health_file.write_text(payload)
        except OSError as exc:
            self.last_error = f"health file: {exc}"
