"""``IngestWorker``: runs the runtime (LedgerCache, Dispatcher, stage pools) and Kafka ingress
actors that consume ``ingest.requests.v1``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import ray

from ingest_ray.config import Settings
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.metrics import Snapshot
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.workers.base import Worker, WorkerHealth


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

    def _start(self) -> None:
        KafkaClient.from_settings(self.settings).ensure_topics()
        self.recovered = self.runtime.start()
        self.runtime.start_ingress(self.consumers, tag=self.name)

    def drain(self, grace_s: float) -> dict[str, Any]:
        """Stop the consumers (their offsets are committed), then let in-flight stages finish
        for up to ``grace_s``; unfinished calls are handed back through the ledger."""
        stats = self.runtime.stop_ingress() if self.runtime.ingress else []
        handed_back = 0
        if self.runtime.dispatcher is not None:
            handed_back = int(ray.get(self.runtime.dispatcher.drain.remote(grace_s)))
        return {"consumed": sum(s.messages for s in stats), "handed_back": handed_back}

    def _stop_components(self) -> None:
        self.runtime.shutdown()

    def snapshots(self) -> Iterable[Snapshot]:
        """The worker's own figures and those of its Dispatcher and ingress actors."""
        try:
            return [self.metrics.snapshot(), *self.runtime.snapshots()]
        except Exception as exc:  # actors gone or busy: serve what we have
            self.last_error = f"metrics: {exc}"
            return [self.metrics.snapshot()]

    def health(self) -> WorkerHealth:
        """Liveness, consumer lag, in-flight stage calls and the last error."""
        health = super().health()
        try:
            stats = ray.get(self.runtime.dispatcher.stats.remote(), timeout=10)
            ingress = ray.get([a.stats.remote() for a in self.runtime.ingress], timeout=10)
            lags = ray.get([a.lag.remote() for a in self.runtime.ingress], timeout=10)
        except Exception as exc:  # report, do not die
            health.last_error = f"health: {exc}"
            return health
        health.in_flight = sum(stats["in_flight"].values())
        health.lag = sum(sum(lag.values()) for lag in lags)
        errors = [s.last_error for s in ingress if s.last_error]
        health.last_error = errors[-1] if errors else self.last_error
        health.details = {
            **health.details,
            "held": stats["held"], "timers": stats["timers"], "paused": stats["paused"],
            "recovered": self.recovered, "consumed": sum(s.messages for s in ingress),
            "created": sum(s.created for s in ingress),
        }  # fmt: skip
        for pool, size in ((p, len(a)) for p, a in stats["pools"].items()):
            health.details[f"pool_{pool}"] = size
        return health
