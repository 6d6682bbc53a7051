"""Assembling a runtime on Ray: the LedgerCache, the Dispatcher (with its pools) and Kafka
ingress actors, found by name when they already exist, so several worker processes of one
cluster share one Dispatcher."""

from __future__ import annotations

import logging
from typing import Any

import ray

from ingest_ray import local_ray
from ingest_ray.config import Settings
from ingest_ray.metrics import Snapshot
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.dispatcher import RemoteDispatcher
from ingest_ray.runtime.ingress import IngressStats, RemoteKafkaIngress
from ingest_ray.runtime.ledger_cache import RemoteLedgerCache
from ingest_ray.runtime.options import RuntimeOptions

log = logging.getLogger(__name__)


def connect_ray(settings: Settings, options: RuntimeOptions) -> None:
    """Join the cluster at ``settings.ray_address``, or start a local Ray (with its dashboard
    on loopback) once per process; :func:`ingest_ray.local_ray.stop` ends it."""
    local_ray.start(settings, namespace=options.namespace)


class Runtime:
    """Handles to one runtime's actors."""

    def __init__(
        self, settings: Settings, catalog: Catalog, options: RuntimeOptions | None = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.options = options or RuntimeOptions()
        self.dispatcher: Any = None
        self.ledger_cache: Any = None
        self.ingress: list[Any] = []

    def start(self) -> int:
        """Create (or find) the LedgerCache and the Dispatcher; answers jobs recovered."""
        connect_ray(self.settings, self.options)
        opts = self.options
        self.ledger_cache = RemoteLedgerCache.options(
            name=opts.ledger_cache_name, namespace=opts.namespace, get_if_exists=True,
            num_cpus=0, max_concurrency=1000,
        ).remote(self.settings)  # fmt: skip
        self.dispatcher = RemoteDispatcher.options(
            name=opts.dispatcher_name, namespace=opts.namespace, get_if_exists=True,
            num_cpus=0, max_concurrency=1000,
        ).remote(self.catalog, self.settings, opts)  # fmt: skip
        return int(ray.get(self.dispatcher.start.remote()))

    def start_ingress(self, count: int, *, tag: str, group_id: str | None = None) -> None:
        """Start ``count`` Kafka ingress actors in ``group_id`` (the settings' group by default)."""
        group = group_id or self.settings.consumer_group
        for i in range(count):
            actor = RemoteKafkaIngress.options(
                name=f"{self.options.name}/ingress/{tag}/{i}", namespace=self.options.namespace,
                num_cpus=0, max_concurrency=4,
            ).remote(self.settings, self.options, self.dispatcher, group)  # fmt: skip
            self.ingress.append(actor)

    def stop_ingress(self) -> list[IngressStats]:
        """Stop polling everywhere: offsets of admitted batches are committed, producers flushed."""
        stats = ray.get([a.stop.remote() for a in self.ingress])
        for actor in self.ingress:
            ray.kill(actor)
        self.ingress.clear()
        return list(stats)

    def drain(self, grace_s: float) -> int:
        """Stop taking new work and let in-flight stages finish; answers calls handed back."""
        self.stop_ingress()
        return int(ray.get(self.dispatcher.drain.remote(grace_s)))

    def snapshots(self) -> list[Snapshot]:
        """Metric snapshots of the Dispatcher and ingress actors (for ``/metrics``)."""
        refs = [self.dispatcher.metrics_snapshot.remote()]
        refs += [a.metrics_snapshot.remote() for a in self.ingress]
        return list(ray.get(refs, timeout=10))

    def shutdown(self) -> None:
        """Stop everything this runtime started (the Dispatcher kills its pools)."""
        if self.ingress:
            self.stop_ingress()
        if self.dispatcher is not None:
            ray.get(self.dispatcher.shutdown.remote())
            ray.kill(self.dispatcher)
            self.dispatcher = None
        if self.ledger_cache is not None:
            ray.kill(self.ledger_cache)
            self.ledger_cache = None
