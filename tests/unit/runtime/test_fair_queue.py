"""The fair ready queue on its own: one tenant behaves as the priority queue did; several take
turns by weight; removal, front returns and keyed lanes."""

from __future__ import annotations

from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.runtime.fair_queue import FairQueue
from ingest_ray.runtime.work import WorkItem


def _item(job: str, tenant: str = "t", priority: int = 5, ready_at: float = 0.0) -> WorkItem:
    source = DocumentSource(kind=SourceKind.TEXT, value="x")
    item = WorkItem(job, tenant, f"doc:{job}", "p", priority, source)
    item.ready_at = ready_at
    return item


def _drain(queue: FairQueue, now: float = 0.0) -> list[str]:
    out = []
    while (item := queue.pop(now)) is not None:
        out.append(item.job_id)
    return out


def test_fair_queue_with_one_tenant_orders_by_priority_then_arrival() -> None:
    queue = FairQueue(30)
    for job, priority in [("low", 1), ("high1", 9), ("mid", 5), ("high2", 9)]:
        queue.push(_item(job, priority=priority))
    queue.push_front(_item("back", priority=5))
    assert queue.depth_by_priority()[9] == 2 and len(queue) == 5
    assert _drain(queue) == ["high1", "high2", "back", "mid", "low"]


def test_fair_queue_rotates_tenants_by_weight_within_a_priority() -> None:
    weights = {"A": 1.0, "B": 2.0}
    queue = FairQueue(30, weight=weights.__getitem__)
    for i in range(6):
        queue.push(_item(f"a{i}", "A"))
        queue.push(_item(f"b{i}", "B"))
    assert [j[0] for j in _drain(queue)][:9] == list("abbabbabb")


def test_fair_queue_passes_over_refused_tenants_but_not_their_started_jobs() -> None:
    queue = FairQueue(30)
    queue.push(_item("a-new", "A"))
    started = _item("a-started", "A")
    started.needs_start = False
    queue.push(started)
    queue.push(_item("b-new", "B"))
    refuse_a = lambda tenant: tenant == "A"  # noqa: E731
    assert queue.pop(0.0, refuse_a).job_id == "a-started"  # type: ignore[union-attr]
    assert queue.pop(0.0, refuse_a).job_id == "b-new"  # type: ignore[union-attr]
    assert queue.pop(0.0, refuse_a) is None
    assert "a-new" in queue and queue.depth_by_tenant() == {"A": 1}


def test_fair_queue_removes_any_job_and_keyed_lanes_follow_their_key() -> None:
    queue = FairQueue(30, key=lambda item: float(item.job_id[-1]))
    for job in ["j3", "j1", "j2"]:
        queue.push(_item(job))
    assert queue.remove("j1") is not None and queue.remove("nope") is None
    assert _drain(queue) == ["j2", "j3"]
    assert queue.best_score(0.0) is None
