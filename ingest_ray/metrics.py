"""Runtime metrics: recorded where the work happens, exposed by every worker's ``/metrics``.

Actors record into a :class:`RuntimeMetrics` (plain counters, picklable snapshots) that also
mirrors each update into Ray's own metrics (``ray.util.metrics``) when running inside Ray, so the
figures show in Ray's Prometheus endpoint and dashboard. A worker process pulls the snapshots of
its actors and serves them, with its own, through a prometheus-client collector.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from ray.util import metrics as ray_metrics

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ingest_jobs_admitted": ("Jobs admitted to the ledger", ("pipeline",)),
    "ingest_jobs_completed": ("Jobs completed", ("pipeline",)),
    "ingest_jobs_failed": ("Jobs failed for good", ("pipeline",)),
    "ingest_jobs_cancelled": ("Jobs cancelled", ("pipeline",)),
    "ingest_stage_attempts": (
        "Stage tries by result (ok, retry, lost, fail, refused)",
        ("stage", "result"),
    ),
    "ingest_retries_scheduled": ("Retries put on the timer heap", ("stage",)),
    "ingest_dead_letters": ("Messages sent to the dead-letter topic", ("kind",)),
    "ingest_messages_consumed": ("Kafka messages consumed", ("topic",)),
    "ingest_reconcile_repairs": (
        "Differences between the ledger and the Dispatcher that reconciliation repaired",
        ("kind",),
    ),
    "ingest_control_errors": ("Failed steps of the control plane, by where", ("where",)),
    "ingest_outbox_sent": ("Outbox messages published", ()),
    "ingest_outbox_parked": ("Outbox messages the broker refused for good", ()),
    "ingest_admission_retries": ("Request batches read again after admission failed", ()),
}
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ingest_queue_depth": ("Jobs waiting in the Dispatcher per priority", ("priority",)),
    "ingest_in_flight": ("Stage calls in flight per pool", ("pool",)),
    "ingest_consumer_lag": ("Messages behind the end of each partition", ("topic", "partition")),
    "ingest_backpressure_paused": ("1 while ingress is paused by backpressure", ()),
    "ingest_pool_size": ("Actors alive per pool", ("pool",)),
    "ingest_pool_target": ("Actors each pool is sized to", ("pool",)),
    "ingest_pool_backlog": ("Jobs ready for each pool", ("pool",)),
    "ingest_pool_utilisation": ("Busy share of each pool's call slots", ("pool",)),
    "ingest_outbox_depth": ("Messages recorded in the outbox and not yet published", ()),
    "ingest_tenant_in_flight": ("Jobs started and not finished, per tenant", ("tenant",)),
    "ingest_tenant_waiting": (
        "Jobs held per tenant, waiting for a worker, a retry time or a token",
        ("tenant",),
    ),
    "ingest_tenant_share": ("Tenant's part of the last minute's dispatches", ("tenant",)),
    "ingest_tenant_fair_share": (
        "Part of the dispatches the tenant's weight entitles it to",
        ("tenant",),
    ),
    "ingest_tenant_quota_used": ("Jobs the tenant started in the last hour", ("tenant",)),
    "ingest_tenant_blocked": (
        "1 while the tenant starts no new job (in-flight cap or hourly quota)",
        ("tenant",),
    ),
    "ingest_tenant_wait_p50_seconds": (
        "Median wait of the tenant's recent jobs in the ready queues",
        ("tenant",),
    ),
    "ingest_tenant_wait_p99_seconds": (
        "99th percentile wait of the tenant's recent jobs in the ready queues",
        ("tenant",),
    ),
    "ingest_source_waiting": ("Jobs waiting for a rate-limit token, per source", ("source",)),
    "ingest_ledger_backlog": ("Queued jobs in the ledger that the Dispatcher does not hold", ()),
}
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ingest_stage_duration_seconds": ("Stage call latency", ("stage",)),
}

Labels = tuple[str, ...]


@dataclass
class Snapshot:
    """Plain values of every metric, mergeable across processes."""

    counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    gauges: dict[str, dict[Labels, float]] = field(default_factory=dict)
    #: name -> labels -> (bucket counts, sum, count)
    histograms: dict[str, dict[Labels, tuple[list[int], float, int]]] = field(default_factory=dict)


class RuntimeMetrics:
    """Counters, gauges and histograms by name and label values.

    Counter and gauge updates reach Ray's metrics in batches: :meth:`flush` (called by the
    actors' loops about once a second) sends the summed increments and the latest gauge values,
    so a hot loop does not pay a Ray metrics call per job.
    """

    def __init__(self, *, mirror_to_ray: bool = False) -> None:
        self._snap = Snapshot()
        self._ray: dict[str, Any] = _ray_metrics() if mirror_to_ray else {}
        self._unsent_counts: dict[tuple[str, Labels], float] = {}
        self._unsent_gauges: dict[tuple[str, Labels], float] = {}

    def inc(self, name: str, *labels: str, value: float = 1.0) -> None:
        """Add to a counter."""
        series = self._snap.counters.setdefault(name, {})
        series[labels] = series.get(labels, 0.0) + value
        if name in self._ray:
            key = (name, labels)
            self._unsent_counts[key] = self._unsent_counts.get(key, 0.0) + value

    def set(self, name: str, *labels: str, value: float) -> None:
        """Set a gauge."""
        self._snap.gauges.setdefault(name, {})[labels] = value
        if name in self._ray:
            self._unsent_gauges[(name, labels)] = value

    def flush(self) -> None:
        """Send the batched counter and gauge updates to Ray's metrics."""
        counts, self._unsent_counts = self._unsent_counts, {}
        gauges, self._unsent_gauges = self._unsent_gauges, {}
        for (name, labels), value in counts.items():
            self._ray[name].inc(value, tags=dict(zip(COUNTERS[name][1], labels, strict=True)))
        for (name, labels), value in gauges.items():
            self._ray[name].set(value, tags=dict(zip(GAUGES[name][1], labels, strict=True)))

    def observe(self, name: str, *labels: str, value: float) -> None:
        """Record one histogram observation."""
        series = self._snap.histograms.setdefault(name, {})
        buckets, total, count = series.get(labels, ([0] * (len(BUCKETS) + 1), 0.0, 0))
        buckets[bisect.bisect_left(BUCKETS, value)] += 1
        series[labels] = (buckets, total + value, count + 1)
        if name in self._ray:
            self._ray[name].observe(value, tags=dict(zip(HISTOGRAMS[name][1], labels, strict=True)))

    def snapshot(self) -> Snapshot:
        """A copy of the current values."""
        return Snapshot(
            {k: dict(v) for k, v in self._snap.counters.items()},
            {k: dict(v) for k, v in self._snap.gauges.items()},
            {
                k: {lb: (list(b), s, c) for lb, (b, s, c) in v.items()}
                for k, v in self._snap.histograms.items()
            },
        )


def _ray_metrics() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (doc, keys) in COUNTERS.items():
        out[name] = ray_metrics.Counter(name, description=doc, tag_keys=keys)
    for name, (doc, keys) in GAUGES.items():
        out[name] = ray_metrics.Gauge(name, description=doc, tag_keys=keys)
    for name, (doc, keys) in HISTOGRAMS.items():
        out[name] = ray_metrics.Histogram(
            name, description=doc, boundaries=list(BUCKETS), tag_keys=keys
        )
    return out


class SnapshotCollector(Collector):
    """A prometheus-client collector that renders the snapshots ``source`` returns."""

    def __init__(self, source: Callable[[], Iterable[Snapshot]]) -> None:
        self._source = source

    def collect(self) -> Iterable[Any]:
        merged = merge(self._source())
        for name, (doc, keys) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=list(keys))
            for labels, value in merged.counters.get(name, {}).items():
                family.add_metric(list(labels), value)
            yield family
        for name, (doc, keys) in GAUGES.items():
            gauge = GaugeMetricFamily(name, doc, labels=list(keys))
            for labels, value in merged.gauges.get(name, {}).items():
                gauge.add_metric(list(labels), value)
            yield gauge
        for name, (doc, keys) in HISTOGRAMS.items():
            hist = HistogramMetricFamily(name, doc, labels=list(keys))
            for labels, (buckets, total, _) in merged.histograms.get(name, {}).items():
                hist.add_metric(list(labels), _cumulative(buckets), total)
            yield hist


def _cumulative(buckets: list[int]) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, count in zip([*map(str, BUCKETS), "+Inf"], buckets, strict=True):
        running += count
        out.append((bound, float(running)))
    return out


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Sum counters and histograms, take the latest gauge, across snapshots."""
    out = Snapshot()
    for snap in snapshots:
        _add(out.counters, snap.counters)
        for name, series in snap.gauges.items():
            out.gauges.setdefault(name, {}).update(series)
        for name, hist in snap.histograms.items():
            target = out.histograms.setdefault(name, {})
            for labels, (buckets, total, count) in hist.items():
                old = target.get(labels, ([0] * len(buckets), 0.0, 0))
                summed = [a + b for a, b in zip(old[0], buckets, strict=True)]
                target[labels] = (summed, old[1] + total, old[2] + count)
    return out


def _add(into: dict[str, dict[Labels, float]], more: Mapping[str, Mapping[Labels, float]]) -> None:
    for name, series in more.items():
        target = into.setdefault(name, {})
        for labels, value in series.items():
            target[labels] = target.get(labels, 0.0) + value
