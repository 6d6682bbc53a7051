"""A stage's ready queue: priority with aging across levels, weighted fair shares across tenants
within a level.

Ten priority levels 0..9. The next level is the one whose oldest job has the largest
``priority + waited / aging_s`` (as ``ready.py``: low priority is never starved). Within a level
each tenant has a lane, and tenants take turns by deficit round robin: the tenant at the head of
the ring earns ``weight / smallest weight in the ring`` credits per turn and spends one per job,
so tenants with work waiting get dispatches in proportion to their weights, whatever the size of
their backlogs. A tenant that may not start new jobs now (at its in-flight cap, over its quota)
is passed over without earning credit, but its jobs that already started (a later stage, a
retry) still go: a cap never strands work in progress.

A lane is FIFO, or ordered by a key (``key``: the MinerU pool orders documents by size, see
``admission_core.py``). ``push_front`` puts a job back at the very front (a dispatch that could
not be sent).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable, Iterator

from ingest_ray.runtime.work import WorkItem

PRIORITIES = 10
Order = tuple[float, int]
Refuses = Callable[[str], bool]


class _Fifo:
    """Jobs in arrival order."""

    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: deque[tuple[Order, WorkItem]] = deque()

    def push(self, order: Order, item: WorkItem) -> None:
        if order[0] == -math.inf:
            self._q.appendleft((order, item))
        else:
            self._q.append((order, item))

    def head(self) -> tuple[Order, WorkItem] | None:
        return self._q[0] if self._q else None

    def pop(self) -> WorkItem:
        return self._q.popleft()[1]

    def remove(self, job_id: str) -> WorkItem | None:
        for entry in self._q:
            if entry[1].job_id == job_id:
                self._q.remove(entry)
                return entry[1]
        return None

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[WorkItem]:
        return (item for _, item in self._q)


class _Keyed:
    """Jobs ordered by a key (smallest first), then arrival."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h: list[tuple[Order, WorkItem]] = []

    def push(self, order: Order, item: WorkItem) -> None:
        heapq.heappush(self._h, (order, item))

    def head(self) -> tuple[Order, WorkItem] | None:
        return self._h[0] if self._h else None

    def pop(self) -> WorkItem:
        return heapq.heappop(self._h)[1]

    def remove(self, job_id: str) -> WorkItem | None:
        for i, entry in enumerate(self._h):
            if entry[1].job_id == job_id:
                self._h.pop(i)
                heapq.heapify(self._h)
                return entry[1]
        return None

    def __len__(self) -> int:
        return len(self._h)

    def __iter__(self) -> Iterator[WorkItem]:
        return (item for _, item in self._h)


class _Lane:
    """One tenant's jobs at one priority: those already started (never held back) and new ones."""

    __slots__ = ("fresh", "started")

    def __init__(self, keyed: bool) -> None:
        self.started: _Fifo | _Keyed = _Keyed() if keyed else _Fifo()
        self.fresh: _Fifo | _Keyed = _Keyed() if keyed else _Fifo()

    def part(self, item: WorkItem) -> _Fifo | _Keyed:
        return self.fresh if item.needs_start else self.started

    def has(self, refuse_new: bool) -> bool:
        return bool(self.started) or (not refuse_new and bool(self.fresh))

    def pop(self, refuse_new: bool) -> WorkItem:
        started, fresh = self.started.head(), None if refuse_new else self.fresh.head()
        if fresh is not None and (started is None or fresh[0] < started[0]):
            return self.fresh.pop()
        return self.started.pop()

    def oldest(self) -> float:
        heads = [h[1].ready_at for h in (self.started.head(), self.fresh.head()) if h is not None]
        return min(heads)

    def __len__(self) -> int:
        return len(self.started) + len(self.fresh)


class _Level:
    """One priority: a lane per tenant and the ring of tenants with their credit."""

    __slots__ = ("credit", "lanes", "ring", "size")

    def __init__(self) -> None:
        self.lanes: dict[str, _Lane] = {}
        self.ring: deque[str] = deque()
        self.credit: dict[str, float] = {}
        self.size = 0

    def oldest(self) -> float:
        return min(self.lanes[t].oldest() for t in self.ring)

    def drop(self, tenant: str) -> None:
        del self.lanes[tenant]
        self.ring.remove(tenant)
        self.credit.pop(tenant, None)


class FairQueue:
    """Priority levels with aging; per level, tenants' lanes served by weighted deficit round
    robin. O(levels + tenants) per pop, O(1) per push (O(log n) for keyed lanes)."""

    def __init__(
        self,
        aging_s: float = 30.0,
        *,
        weight: Callable[[str], float] = lambda _: 1.0,
        key: Callable[[WorkItem], float] | None = None,
    ) -> None:
        if aging_s <= 0:
            raise ValueError("aging_s must be positive")
        self.aging_s = aging_s
        self._weight = weight
        self._key = key
        self._levels = [_Level() for _ in range(PRIORITIES)]
        self._where: dict[str, tuple[int, str]] = {}
        self._back = itertools.count()
        self._front = itertools.count(-1, -1)

    # --- in and out -------------------------------------------------------------------------

    def push(self, item: WorkItem) -> None:
        """Add an item that became ready at ``item.ready_at``."""
        key = self._key(item) if self._key is not None else 0.0
        self._add(item, (key, next(self._back)))

    def push_front(self, item: WorkItem) -> None:
        """Return an item that was popped but could not be dispatched."""
        self._add(item, (-math.inf, next(self._front)))

    def _add(self, item: WorkItem, order: Order) -> None:
        priority = max(0, min(PRIORITIES - 1, item.priority))
        level = self._levels[priority]
        lane = level.lanes.get(item.tenant_id)
        if lane is None:
            lane = level.lanes[item.tenant_id] = _Lane(self._key is not None)
            level.ring.append(item.tenant_id)
        lane.part(item).push(order, item)
        level.size += 1
        self._where[item.job_id] = (priority, item.tenant_id)

    def best_score(self, now: float) -> float | None:
        """The best level's score (``priority + waited / aging_s``), ``None`` when empty."""
        scores = [p + (now - lv.oldest()) / self.aging_s for p, lv in self._active()]
        return max(scores) if scores else None

    def pop(self, now: float, refuses_new: Refuses | None = None) -> WorkItem | None:
        """The most deserving item, or ``None``. ``refuses_new(tenant)`` says a tenant may not
        start new jobs now: its new jobs are passed over (and stay queued)."""
        ranked = sorted(
            ((p + (now - lv.oldest()) / self.aging_s, p) for p, lv in self._active()),
            reverse=True,
        )
        for _, priority in ranked:
            item = self._pop_level(self._levels[priority], refuses_new)
            if item is not None:
                del self._where[item.job_id]
                return item
        return None

    def _pop_level(self, level: _Level, refuses_new: Refuses | None) -> WorkItem | None:
        ring = level.ring
        smallest = min(self._weight(t) for t in ring) if len(ring) > 1 else 1.0
        passed = 0
        while passed < len(ring):
            tenant = ring[0]
            lane = level.lanes[tenant]
            refuse = refuses_new is not None and refuses_new(tenant)
            if not lane.has(refuse):
                ring.rotate(-1)
                passed += 1
                continue
            credit = level.credit.get(tenant, 0.0)
            if credit < 1.0:  # a new turn: every tenant earns at least one job's credit
                credit += max(1.0, self._weight(tenant) / smallest) if len(ring) > 1 else 1.0
            item = lane.pop(refuse)
            level.size -= 1
            credit -= 1.0
            if not lane:
                level.drop(tenant)
            elif credit < 1.0:
                level.credit[tenant] = credit
                ring.rotate(-1)
            else:
                level.credit[tenant] = credit
            return item
        return None

    def remove(self, job_id: str) -> WorkItem | None:
        """Take a job out (cancellation); linear in its lane, which is fine for a rare call."""
        where = self._where.pop(job_id, None)
        if where is None:
            return None
        level = self._levels[where[0]]
        lane = level.lanes[where[1]]
        item = lane.fresh.remove(job_id) or lane.started.remove(job_id)
        if item is not None:
            level.size -= 1
            if not lane:
                level.drop(where[1])
        return item

    # --- reading ----------------------------------------------------------------------------

    def _active(self) -> Iterator[tuple[int, _Level]]:
        return ((p, lv) for p, lv in enumerate(self._levels) if lv.size)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._where

    def depth_by_priority(self) -> list[int]:
        """Items waiting per priority 0..9."""
        return [lv.size for lv in self._levels]

    def depth_by_tenant(self) -> Counter[str]:
        """Items waiting per tenant."""
        out: Counter[str] = Counter()
        for level in self._levels:
            for tenant, lane in level.lanes.items():
                out[tenant] += len(lane)
        return out

    def __len__(self) -> int:
        return len(self._where)

    def __iter__(self) -> Iterator[WorkItem]:
        for level in self._levels:
            for lane in level.lanes.values():
                yield from lane.started
                yield from lane.fresh
