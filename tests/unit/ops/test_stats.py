"""Chart figures from jobs and heartbeats (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest_ray.ledger.base import Job
from ingest_ray.states import JobStatus
from ingest_ray.stats import PoolFigure, completed_per_minute, pool_figures, queue_by_priority
from ingest_ray.workers.base import WorkerHealth

NOW = datetime(2026, 5, 1, 12, 30, 40, tzinfo=UTC)


def _job(priority: int = 5, finished: datetime | None = None) -> Job:
    return Job(job_id="j", tenant_id="t", doc_key="d", pipeline="auto", priority=priority,
               status=JobStatus.COMPLETED if finished else JobStatus.QUEUED, created_at=NOW,
               updated_at=NOW, finished_at=finished)  # fmt: skip


def test_stats_completed_per_minute_buckets_the_last_minutes() -> None:
    jobs = [_job(finished=NOW), _job(finished=NOW - timedelta(seconds=20)),
            _job(finished=NOW - timedelta(minutes=3)), _job(finished=NOW - timedelta(hours=2)),
            _job()]  # fmt: skip
    series = completed_per_minute(jobs, NOW, minutes=5)
    assert [m.minute.minute for m in series] == [26, 27, 28, 29, 30]
    assert [m.count for m in series] == [0, 1, 0, 0, 2]


def test_stats_queue_by_priority_has_every_priority() -> None:
    counts = queue_by_priority([_job(9), _job(9), _job(0)])
    assert counts == {**dict.fromkeys(range(10), 0), 9: 2, 0: 1}


def _beat(name: str, updated: float, details: dict[str, object], *, alive: bool = True,
          kind: str = "ingest") -> WorkerHealth:  # fmt: skip
    return WorkerHealth(name=name, kind=kind, pid=1, host="h", alive=alive, started_at=0,
                        updated_at=updated, details=details)  # fmt: skip


def test_stats_pool_figures_from_the_newest_live_ingest_heartbeat() -> None:
    beats = [
        _beat("old", 1.0, {"pool_embed": 9}),
        _beat(
            "new",
            2.0,
            {
                "metrics_port": 9464,
                "pool_embed": 2,
                "pool_embed_in_flight": 3,
                "pool_embed_capacity": 4,
                "pool_meta_index": 1,
            },
        ),
        _beat("dead", 3.0, {"pool_embed": 7}, alive=False),
        _beat("mapper", 4.0, {"mapped": 3}, kind="mapping"),
    ]
    assert pool_figures(beats) == [
        PoolFigure("embed", 2, 3, 4, 0.75),
        PoolFigure("meta_index", 1, None, None, None),
    ]
    nested = _beat("n", 5.0, {"pools": {"chunk": {"size": 1, "in_flight": 1, "capacity": 8}}})
    assert pool_figures([nested]) == [PoolFigure("chunk", 1, 1, 8, 0.125)]
    assert pool_figures([]) == []
