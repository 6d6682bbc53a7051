"""A ready queue ordered by priority, then age, with aging so low priority is never starved.

Ten FIFO buckets, one per priority 0..9. The next item is the head (oldest) of the bucket whose
``priority + waited / aging_s`` is largest: a priority-2 job that has waited ``7 * aging_s``
competes with a fresh priority-9 job. Within a bucket, order is arrival order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from ingest_ray.runtime.work import WorkItem

PRIORITIES = 10


class ReadyQueue:
    """Priority buckets with aging; O(10) per pop, O(1) per push."""

    def __init__(self, aging_s: float = 30.0) -> None:
        if aging_s <= 0:
            raise ValueError("aging_s must be positive")
        self.aging_s = aging_s
        self._buckets: list[deque[WorkItem]] = [deque() for _ in range(PRIORITIES)]
        self._ids: set[str] = set()

    def push(self, item: WorkItem) -> None:
        """Add an item that became ready at ``item.ready_at``."""
        self._buckets[max(0, min(PRIORITIES - 1, item.priority))].append(item)
        self._ids.add(item.job_id)

    def push_front(self, item: WorkItem) -> None:
        """Return an item that was popped but could not be dispatched."""
        self._buckets[max(0, min(PRIORITIES - 1, item.priority))].appendleft(item)
        self._ids.add(item.job_id)

    def best_score(self, now: float) -> float | None:
        """The score of the item :meth:`pop` would return, ``None`` when empty."""
        best: float | None = None
        for priority, bucket in enumerate(self._buckets):
            if bucket:
                score = priority + (now - bucket[0].ready_at) / self.aging_s
                if best is None or score > best:
                    best = score
        return best

    def pop(self, now: float) -> WorkItem | None:
        """The most deserving item, or ``None``."""
        chosen = -1
        best = 0.0
        for priority in range(PRIORITIES - 1, -1, -1):
            bucket = self._buckets[priority]
            if bucket:
                score = priority + (now - bucket[0].ready_at) / self.aging_s
                if chosen < 0 or score > best:
                    chosen, best = priority, score
        if chosen < 0:
            return None
        item = self._buckets[chosen].popleft()
        self._ids.discard(item.job_id)
        return item

    def remove(self, job_id: str) -> WorkItem | None:
        """Take a job out (cancellation); linear, which is fine for a rare operation."""
        if job_id not in self._ids:
            return None
        for bucket in self._buckets:
            for item in bucket:
                if item.job_id == job_id:
                    bucket.remove(item)
                    self._ids.discard(job_id)
                    return item
        return None

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def depth_by_priority(self) -> list[int]:
        """Items waiting per priority 0..9."""
        return [len(b) for b in self._buckets]

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[WorkItem]:
        for bucket in self._buckets:
            yield from bucket
