"""The outbox relay actor: a thin shell that runs :class:`ingest_ray.outbox.OutboxRelay` on a
thread of its own until stopped. One per runtime, detached and restartable; a relay that
restarts first sends what it had claimed and not acknowledged."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import ray
import redis

from ingest_ray.config import Settings
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.base import OutboxEntry
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.metrics import RuntimeMetrics, Snapshot
from ingest_ray.outbox import OutboxRelay, RelayStats
from ingest_ray.runtime.actors import control_options
from ingest_ray.runtime.options import RuntimeOptions


class RelayActor:
    """Publishes the ledger's outbox to Kafka."""

    def __init__(self, settings: Settings, options: RuntimeOptions) -> None:
        self._ledger = open_ledger(settings)
        self._producer = KafkaClient.from_settings(settings).producer()
        self._redis = redis.Redis.from_url(settings.redis_url)
        self._keys = RedisKeys(settings.redis_prefix)
        self._relay = OutboxRelay(
            self._ledger, self._producer, consumer=f"{options.name}/relay", park=self._park,
            batch=options.relay_batch, wall=time.time,
        )  # fmt: skip
        self.metrics = RuntimeMetrics(mirror_to_ray=True)
        self._idle_s = options.relay_idle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff, flushed, idle = 0.0, 0.0, self._idle_s
        while not self._stop.is_set():
            try:
                sent = self._relay.step()
                backoff = 0.0
            except Exception as exc:  # the ledger is away: try again, a little later each time
                self._relay.note_error(f"{type(exc).__name__}: {exc}")
                backoff = min(2.0, max(0.1, backoff * 2))
                self._stop.wait(backoff)
                continue
            if sent:
                self.metrics.inc("ingest_outbox_sent", value=sent)
            if time.monotonic() - flushed > 1.0:
                flushed = time.monotonic()
                self._gauges()
            # an empty outbox is polled less and less often (up to 5x the idle interval)
            idle = self._idle_s if sent else min(5 * self._idle_s, idle * 1.5)
            if not sent:
                self._stop.wait(idle)

    def _gauges(self) -> None:
        with contextlib.suppress(Exception):  # a gauge is best effort; step() reports outages
            self.metrics.set("ingest_outbox_depth", value=self._ledger.outbox_depth())
        self.metrics.flush()

    def _park(self, entry: OutboxEntry, reason: str) -> None:
        m = entry.message
        self._redis.xadd(self._keys.outbox_parked, {
            "topic": m.topic, "key": m.key or "", "event_id": m.event_id, "reason": reason,
            "headers": json.dumps(m.headers), "size": str(len(m.value)),
            "value": m.value[:65536],
        }, maxlen=10000, approximate=True)  # fmt: skip
        self.metrics.inc("ingest_outbox_parked")

    def stats(self) -> RelayStats:
        """Totals and the last error."""
        return self._relay.stats

    def metrics_snapshot(self) -> Snapshot:
        """Counters for the worker's ``/metrics``."""
        return self.metrics.snapshot()

    def stop(self, timeout_s: float = 10.0) -> RelayStats:
        """Send what is due, then stop."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self._ledger.outbox_depth() == 0:
                    break
            except Exception:
                break
            time.sleep(0.1)
        self._stop.set()
        self._thread.join(timeout=30)
        self._producer.close(timeout=5)
        self._ledger.close()
        self._redis.close()
        return self._relay.stats


RemoteRelay = ray.remote(RelayActor)


def relay_actor(settings: Settings, options: RuntimeOptions) -> Any:
    """The runtime's relay, created when it does not exist."""
    return RemoteRelay.options(
        name=options.relay_name, namespace=options.namespace, max_concurrency=4,
        **control_options(settings),
    ).remote(settings, options)  # fmt: skip
