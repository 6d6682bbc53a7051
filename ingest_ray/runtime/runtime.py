"""Assembling a runtime on Ray, and keeping it alive.

A runtime is a control plane shared by every worker process that names it (the Dispatcher,
which writes the ledger, and the outbox relay: detached, restartable, found by name) plus the
Kafka ingress actors of each worker (owned by that worker, so they end with it and its consumer
group rebalances). :meth:`Runtime.supervise` (the worker calls it every second) recreates
whatever is gone and restarts the Dispatcher's loop after Ray restarted it. Workers register as
members in Redis; the control plane stops when the last member leaves, or with
``ingest-ray runtime stop``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
import redis

from ingest_ray import local_ray
from ingest_ray.config import Settings
from ingest_ray.keys import RedisKeys
from ingest_ray.metrics import Snapshot
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.actors import check_placement, find, placement
from ingest_ray.runtime.dispatcher import dispatcher_actor
from ingest_ray.runtime.ingress import IngressStats, RemoteKafkaIngress
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.relay import relay_actor

log = logging.getLogger(__name__)


def connect_ray(settings: Settings, options: RuntimeOptions) -> None:
    """Join the cluster at ``settings.ray_address``, or start a local Ray (with its dashboard
    on loopback) once per process; :func:`ingest_ray.local_ray.stop` ends it."""
    local_ray.start(settings, namespace=options.namespace)


@dataclass
class Supervision:
    """What :meth:`Runtime.supervise` found and did."""

    dispatcher: str = "running"
    restarted: tuple[str, ...] = ()


class Runtime:
    """Handles to one runtime's actors, as one worker process sees them."""

    def __init__(
        self, settings: Settings, catalog: Catalog, options: RuntimeOptions | None = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.options = options or RuntimeOptions(name=settings.runtime_name)
        self.keys = RedisKeys(settings.redis_prefix)
        self.dispatcher: Any = None
        self.ingress: list[Any] = []
        self._ingress_spec: tuple[int, str, str] | None = None
        self.restarts = 0

    # --- control plane --------------------------------------------------------------------

    def start(self, *, member: str | None = None) -> int:
        """Create (or find) the control plane, join it as ``member``; answers jobs recovered."""
        connect_ray(self.settings, self.options)
        check_placement(self.settings, ray.cluster_resources())  # type: ignore[no-untyped-call]
        self._ensure_control_plane()
        if member is not None:
            self._redis(lambda r: r.hset(self.keys.members(self.options.name), member, time.time()))
        return int(ray.get(self.dispatcher.start.remote(), timeout=300))

    def _ensure_control_plane(self) -> list[str]:
        made = []
        opts = self.options
        makers: dict[str, Callable[[], Any]] = {
            opts.relay_name: lambda: relay_actor(self.settings, opts),
            opts.dispatcher_name: lambda: dispatcher_actor(self.catalog, self.settings, opts),
        }
        for name, make in makers.items():
            handle = find(name, opts.namespace)
            if handle is None:
                handle = make()
                made.append(name)
            if name == opts.dispatcher_name:
                self.dispatcher = handle
        return made

    def supervise(self) -> Supervision:
        """Recreate what is gone and make sure the Dispatcher's loop runs (after a restart it
        recovers from the ledger on this first call)."""
        report = Supervision()
        made = self._ensure_control_plane()
        try:
            ray.get(self.dispatcher.start.remote(), timeout=10)
        except Exception as exc:  # restarting or recovering: report it, try again next time
            report.dispatcher = f"restarting ({type(exc).__name__})"
        made += self._ensure_ingress()
        if made:
            self.restarts += len(made)
            log.warning("recreated %s", ", ".join(made))
        report.restarted = tuple(made)
        return report

    # --- ingress --------------------------------------------------------------------------

    def start_ingress(self, count: int, *, tag: str, group_id: str | None = None) -> None:
        """Start ``count`` Kafka ingress actors in ``group_id`` (the settings' group by default),
        all in one consumer group with every other worker's."""
        self._ingress_spec = (count, tag, group_id or self.settings.consumer_group)
        self.ingress = [None] * count
        self._ensure_ingress()

    def _ensure_ingress(self) -> list[str]:
        """Recreate this worker's ingress actors that are gone. The handle that created an
        actor is kept: a non-detached actor ends when its creating handle is dropped."""
        if self._ingress_spec is None:
            return []
        count, tag, group = self._ingress_spec
        made = []
        for i in range(count):
            name = self.options.ingress_name(tag, i)
            if self.ingress[i] is not None and find(name, self.options.namespace) is not None:
                continue
            pipelines = sorted(self.catalog.pipelines)
            self.ingress[i] = RemoteKafkaIngress.options(
                name=name, namespace=self.options.namespace, num_cpus=0, max_concurrency=4,
                max_restarts=-1, **placement(self.settings),
            ).remote(self.settings, self.options, group, pipelines)  # fmt: skip
            made.append(name)
        return made

    def stop_ingress(self) -> list[IngressStats]:
        """Stop this worker's consumers: their stored offsets are committed; the group
        rebalances to the other workers."""
        self._ingress_spec = None
        stats = []
        for actor in self.ingress:
            try:
                stats.append(ray.get(actor.stop.remote(), timeout=60))
            except Exception as exc:  # dead already: its partitions were handed back
                log.warning("ingress stop: %s", exc)
            ray.kill(actor)
        self.ingress.clear()
        return stats

    # --- stopping -------------------------------------------------------------------------

    def drain(self, grace_s: float) -> int:
        """Stop this worker's ingress; if it is the last member, let in-flight stages finish
        for up to ``grace_s`` (answers calls handed back)."""
        self.stop_ingress()
        if self._other_members() or self.dispatcher is None:
            return 0
        return int(ray.get(self.dispatcher.drain.remote(grace_s), timeout=grace_s + 30))

    def shutdown(self, *, member: str | None = None) -> bool:
        """Leave the runtime; the last member stops the control plane. True if it stopped."""
        if self.ingress:
            self.stop_ingress()
        remaining = self._leave(member) if member is not None else 0
        if remaining > 0:
            return False
        stop_control_plane(self.settings, self.options)
        self.dispatcher = None
        return True

    def _leave(self, member: str) -> int:
        key = self.keys.members(self.options.name)

        def leave(r: redis.Redis) -> int:
            pipe = r.pipeline(transaction=True)
            pipe.hdel(key, member)
            pipe.hgetall(key)
            others = pipe.execute()[1]
            stale = [m for m, joined in others.items() if not _alive(r, self.keys, m, joined)]
            if stale:
                r.hdel(key, *stale)
            return len(others) - len(stale)

        return int(self._redis(leave))

    def _other_members(self) -> bool:
        return int(self._redis(lambda r: r.hlen(self.keys.members(self.options.name))) or 0) > 1

    def _redis(self, call: Any) -> Any:
        client = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        try:
            return call(client)
        finally:
            client.close()

    def snapshots(self) -> list[Snapshot]:
        """Metric snapshots of the control plane and this worker's ingress (for ``/metrics``)."""
        refs = [self.dispatcher.metrics_snapshot.remote()]
        relay = find(self.options.relay_name, self.options.namespace)
        if relay is not None:
            refs.append(relay.metrics_snapshot.remote())
        refs += [a.metrics_snapshot.remote() for a in self.ingress if a is not None]
        return list(ray.get(refs, timeout=10))


def stop_control_plane(settings: Settings, options: RuntimeOptions, *, grace_s: float = 10) -> None:
    """Stop the Dispatcher (and its pools) and the relay (after it sent what is due) of one
    runtime, from any process connected to its Ray."""
    dispatcher = find(options.dispatcher_name, options.namespace)
    if dispatcher is not None:
        try:
            ray.get(dispatcher.drain.remote(grace_s), timeout=grace_s + 30)
            ray.get(dispatcher.shutdown.remote(), timeout=60)
        except Exception as exc:  # a dead or stuck Dispatcher is killed anyway
            log.warning("dispatcher shutdown: %s", exc)
        ray.kill(dispatcher, no_restart=True)
    relay = find(options.relay_name, options.namespace)
    if relay is not None:
        try:
            ray.get(relay.stop.remote(), timeout=60)
        except Exception as exc:
            log.warning("relay stop: %s", exc)
        ray.kill(relay, no_restart=True)
    legacy = find(f"{options.name}/ledger-cache", options.namespace)  # before 2026-12-02
    if legacy is not None:  # the separate LedgerCache actor of an older release
        ray.kill(legacy, no_restart=True)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.delete(RedisKeys(settings.redis_prefix).members(options.name))
    finally:
        client.close()


def _alive(client: redis.Redis, keys: RedisKeys, member: str, joined: str) -> bool:
    """Whether a member still counts: it joined in the last minute, or its worker heartbeat is
    fresh (a killed worker never leaves by itself)."""
    if time.time() - float(joined or 0) < 60:
        return True
    raw = client.hget(keys.workers, member)
    if not raw:
        return False
    beat = json.loads(raw)
    fresh = (
        time.time() - float(beat.get("updated_at", 0)) < 3 * float(beat.get("heartbeat_s", 2)) + 15
    )
    return bool(beat.get("alive")) and fresh
