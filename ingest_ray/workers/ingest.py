"""``IngestWorker``: joins (or starts) a runtime and adds its own Kafka ingress actors to the
runtime's consumer group. Any number of ingest workers may run against one runtime name: each
one supervises the shared control plane (recreating what died) and its own ingress; stopping one
drains only its ingress, and the last one to leave stops the control plane."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import ray

from ingest_ray.config import Settings
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.kafka.health import check_kafka
from ingest_ray.metrics import Snapshot
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.actors import find
from ingest_ray.runtime.ingress import IngressStats
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.parts import LoopStats
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.workers.base import Worker, WorkerHealth

KAFKA_CHECK_S = 5.0


class IngestWorker(Worker):
    """Consumes ingest requests and drives their jobs through the pipelines."""

    kind: ClassVar[str] = "ingest"

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        options: RuntimeOptions | None = None,
        consumers: int = 1,
        name: str | None = None,
    ) -> None:
        super().__init__(settings, name=name)
        self.runtime = Runtime(
            settings, catalog, options or RuntimeOptions(name=settings.runtime_name)
        )
        self.consumers = consumers
        self.recovered = 0
        self._supervisor = threading.Thread(target=self._supervise, name="supervise", daemon=True)

    def _start(self) -> None:
        KafkaClient.from_settings(self.settings).ensure_topics()
        self.recovered = self.runtime.start(member=self.name)
        self.runtime.start_ingress(self.consumers, tag=self.name)
        self._supervisor.start()

    def _supervise(self) -> None:
        """Every ``supervise_s``: recreate what died; every few seconds: is Kafka there?"""
        checked = 0.0
        while not self._stop.wait(self.runtime.options.supervise_s):
            try:
                report = self.runtime.supervise()
                if report.dispatcher == "running":
                    self.outages.up("dispatcher restarting")
                else:
                    self.outages.down("dispatcher restarting")
            except Exception as exc:  # Ray itself struggling: say so, keep trying
                self.outages.down("dispatcher restarting")
                self.last_error = f"supervise: {type(exc).__name__}: {exc}"
            if time.monotonic() - checked > KAFKA_CHECK_S:
                checked = time.monotonic()
                self._check_kafka()

    def _check_kafka(self) -> None:
        health = check_kafka(self.settings.kafka_bootstrap_servers, timeout=2.0, topics=())
        if health.brokers > 0:
            self.outages.up("kafka unreachable")
        else:
            self.outages.down("kafka unreachable")

    def drain(self, grace_s: float) -> dict[str, Any]:
        """Stop this worker's consumers (their offsets are committed); if it is the runtime's
        last worker, let in-flight stages finish for up to ``grace_s`` (the rest is handed back
        through the ledger)."""
        consumed = sum(s.messages for s in self._ingress_stats())
        handed_back = self.runtime.drain(grace_s)
        return {"consumed": consumed, "handed_back": handed_back}

    def _stop_components(self) -> None:
        self.runtime.shutdown(member=self.name)

    def snapshots(self) -> Iterable[Snapshot]:
        """The worker's own figures and those of the control plane and its ingress actors."""
        try:
            return [self.metrics.snapshot(), *self.runtime.snapshots()]
        except Exception as exc:  # actors gone or busy: serve what we have
            self.last_error = f"metrics: {exc}"
            return [self.metrics.snapshot()]

    def _ingress_stats(self) -> list[IngressStats]:
        try:
            return list(ray.get([a.stats.remote() for a in self.runtime.ingress], timeout=5))
        except Exception:
            return []

    def health(self) -> WorkerHealth:
        """Liveness, consumer lag, in-flight stage calls, problems and the last error."""
        health = super().health()
        try:
            stats: LoopStats = ray.get(self.runtime.dispatcher.stats.remote(), timeout=5)
        except Exception:
            health.problems.append("dispatcher unreachable")
            return health
        ingress = self._ingress_stats()
        lags = ray.get([a.lag.remote() for a in self.runtime.ingress], timeout=5)
        health.in_flight = sum(stats.in_flight.values())
        health.lag = sum(sum(lag.values()) for lag in lags)
        health.problems += _problems(stats, ingress, self._relay_error())
        errors = [s.last_error for s in ingress if s.last_error]
        health.last_error = errors[-1] if errors else stats.last_error or self.last_error
        health.details = {
            **health.details, "state": stats.state, "held": stats.held, "timers": stats.timers,
            "paused": stats.paused, "recovered": self.recovered, "repairs": stats.repairs,
            "consumed": sum(s.messages for s in ingress),
            "created": sum(s.created for s in ingress), "restarts": self.runtime.restarts,
        }  # fmt: skip
        health.details["pools"] = {
            pool: {"size": f.size, "target": f.target, "in_flight": f.busy, "capacity": f.slots,
                   "backlog": f.backlog}
            for pool, f in stats.pools.items()
        }  # fmt: skip
        for pool, f in stats.pools.items():
            health.details[f"pool_{pool}"] = f.size
        return health

    def _relay_error(self) -> tuple[str | None, float | None]:
        relay = find(self.runtime.options.relay_name, self.runtime.options.namespace)
        if relay is None:
            return "outbox relay restarting", time.time()
        try:
            stats = ray.get(relay.stats.remote(), timeout=5)
        except Exception:
            return "outbox relay unreachable", time.time()
        return stats.last_error, stats.error_since


def _problems(
    stats: LoopStats, ingress: list[IngressStats], relay: tuple[str | None, float | None]
) -> list[str]:
    now, out = time.time(), []
    if stats.state != "running":
        out.append(f"dispatcher {stats.state}")
    if stats.ledger_error_since is not None:
        out.append(f"ledger unreachable since {now - stats.ledger_error_since:.0f} s")
    for s in ingress:
        if s.error_since is not None:
            out.append(f"ingress retrying since {now - s.error_since:.0f} s: {s.last_error}")
    error, since = relay
    if error is not None:
        out.append(f"outbox relay failing since {now - (since or now):.0f} s: {error}")
    return out
