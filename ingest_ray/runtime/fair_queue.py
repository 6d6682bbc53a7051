"""A stage's ready queue: priority with aging across levels, weighted fair shares across tenants
within a level.

Ten priority levels 0..9. The next level is the one whose oldest job has the largest
``priority + waited / aging_s``, so low priority is never starved: a priority-2 job that waited
``7 * aging_s`` competes with a fresh priority-9 one. Within a level
each tenant has a lane, and tenants take turns by deficit round robin: the tenant at the head of
the ring earns ``weight / smallest weight`` credits per turn (the smallest weight any tenant
has, ``min_weight``) and spends one per job,
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
_FRONT = -math.inf
Refuses = Callable[[str], bool]


class _Fifo:
    """Jobs in arrival order, as ``(seq, item)``: negative seqs were put back at the front."""

    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: deque[tuple[int, WorkItem]] = deque()

    def push(self, item: WorkItem, seq: int, key: float) -> None:
        if seq < 0:
            self._q.appendleft((seq, item))
        else:
            self._q.append((seq, item))

    def rank(self) -> tuple[float, int]:
        return (0.0, self._q[0][0])

    def first(self) -> WorkItem | None:
        return self._q[0][1] if self._q else None

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
    """Jobs ordered by a key (smallest first), then arrival, as ``(key, seq, item)``."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h: list[tuple[float, int, WorkItem]] = []

    def push(self, item: WorkItem, seq: int, key: float) -> None:
        heapq.heappush(self._h, (_FRONT if seq < 0 else key, seq, item))

    def rank(self) -> tuple[float, int]:
        return (self._h[0][0], self._h[0][1])

    def first(self) -> WorkItem | None:
        return self._h[0][2] if self._h else None

    def pop(self) -> WorkItem:
        return heapq.heappop(self._h)[2]

    def remove(self, job_id: str) -> WorkItem | None:
        for i, entry in enumerate(self._h):
            if entry[2].job_id == job_id:
                self._h.pop(i)
                heapq.heapify(self._h)
                return entry[2]
        return None

    def __len__(self) -> int:
        return len(self._h)

    def __iter__(self) -> Iterator[WorkItem]:
        return (entry[2] for entry in self._h)


class _Lane:
    """One tenant's jobs at one priority: those already started (never held back) and new ones."""

    __slots__ = ("fresh", "n", "started")

    def __init__(self, keyed: bool) -> None:
        self.started: _Fifo | _Keyed = _Keyed() if keyed else _Fifo()
        self.fresh: _Fifo | _Keyed = _Keyed() if keyed else _Fifo()
        self.n = 0

    def push(self, item: WorkItem, seq: int, key: float) -> None:
        (self.fresh if item.needs_start else self.started).push(item, seq, key)
        self.n += 1

    def has(self, refuse_new: bool) -> bool:
        return bool(self.started) or (not refuse_new and bool(self.fresh))

    def pop(self, refuse_new: bool) -> WorkItem:
        self.n -= 1
        if not self.started:
            return self.fresh.pop()
        if refuse_new or not self.fresh or self.started.rank() < self.fresh.rank():
            return self.started.pop()
        return self.fresh.pop()

    def remove(self, job_id: str) -> WorkItem | None:
        item = self.fresh.remove(job_id) or self.started.remove(job_id)
        if item is not None:
            self.n -= 1
        return item

    def oldest(self) -> float:
        started, fresh = self.started.first(), self.fresh.first()
        if started is None:
            return fresh.ready_at if fresh is not None else math.inf
        if fresh is None:
            return started.ready_at
        return min(started.ready_at, fresh.ready_at)

    def __len__(self) -> int:
        return self.n


class _Level:
    """One priority: a lane per tenant and the ring of tenants with their credit."""

    __slots__ = ("credit", "lanes", "ring", "size")

    def __init__(self) -> None:
        self.lanes: dict[str, _Lane] = {}
        self.ring: deque[str] = deque()
        self.credit: dict[str, float] = {}
        self.size = 0

    def oldest(self) -> float:
        if len(self.ring) == 1:
            return self.lanes[self.ring[0]].oldest()
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
        min_weight: Callable[[], float] = lambda: 1.0,
        key: Callable[[WorkItem], float] | None = None,
    ) -> None:
        if aging_s <= 0:
            raise ValueError("aging_s must be positive")
        self.aging_s = aging_s
        self._weight, self._min_weight = weight, min_weight
        self._key = key
        self._levels = [_Level() for _ in range(PRIORITIES)]
        self._nonempty: set[int] = set()
        self._where: dict[str, WorkItem] = {}
        self._back = itertools.count()
        self._front = itertools.count(-1, -1)

    # --- in and out -------------------------------------------------------------------------

    def push(self, item: WorkItem) -> None:
        """Add an item that became ready at ``item.ready_at``."""
        self._add(item, next(self._back), self._key(item) if self._key is not None else 0.0)

    def push_front(self, item: WorkItem) -> None:
        """Return an item that was popped but could not be dispatched."""
        self._add(item, next(self._front), _FRONT)

    def _add(self, item: WorkItem, seq: int, key: float) -> None:
        priority = max(0, min(PRIORITIES - 1, item.priority))
        level = self._levels[priority]
        lane = level.lanes.get(item.tenant_id)
        if lane is None:
            lane = level.lanes[item.tenant_id] = _Lane(self._key is not None)
            level.ring.append(item.tenant_id)
        lane.push(item, seq, key)
        if not level.size:
            self._nonempty.add(priority)
        level.size += 1
        self._where[item.job_id] = item

    def best_score(self, now: float) -> float | None:
        """The best level's score (``priority + waited / aging_s``), ``None`` when empty."""
        scores = [p + (now - lv.oldest()) / self.aging_s for p, lv in self._active()]
        return max(scores) if scores else None

    def pop(self, now: float, refuses_new: Refuses | None = None) -> WorkItem | None:
        """The most deserving item, or ``None``. ``refuses_new(tenant)`` says a tenant may not
        start new jobs now: its new jobs are passed over (and stay queued)."""
        if len(self._nonempty) == 1:
            ranked = list(self._nonempty)
        else:
            levels, aging = self._levels, self.aging_s
            ranked = sorted(
                self._nonempty, key=lambda p: p + (now - levels[p].oldest()) / aging, reverse=True
            )
        for priority in ranked:
            level = self._levels[priority]
            item = self._pop_level(level, refuses_new)
            if item is not None:
                if not level.size:
                    self._nonempty.discard(priority)
                del self._where[item.job_id]
                return item
        return None

    def pop_many(
        self, count: int, now: float, refuses_new: Refuses | None = None
    ) -> list[WorkItem]:
        """Up to ``count`` items, each the one :meth:`pop` would give next (one tenant at one
        priority, the common case, is taken in one go)."""
        out: list[WorkItem] = []
        if len(self._nonempty) == 1:
            (priority,) = self._nonempty
            level = self._levels[priority]
            if len(level.ring) == 1:
                tenant = level.ring[0]
                if refuses_new is None or not refuses_new(tenant):
                    lane = level.lanes[tenant]
                    while len(out) < count and lane.n:
                        out.append(lane.pop(False))
                    level.size -= len(out)
                    if not lane.n:
                        level.drop(tenant)
                        self._nonempty.discard(priority)
                    for taken in out:
                        del self._where[taken.job_id]
                    return out
        while len(out) < count and (item := self.pop(now, refuses_new)) is not None:
            out.append(item)
        return out

    def _pop_level(self, level: _Level, refuses_new: Refuses | None) -> WorkItem | None:
        ring = level.ring
        if len(ring) == 1:  # one tenant: nothing to share
            tenant = ring[0]
            lane = level.lanes[tenant]
            refuse = refuses_new is not None and refuses_new(tenant)
            if not lane.has(refuse):
                return None
            level.size -= 1
            item = lane.pop(refuse)
            if not lane.n:
                level.drop(tenant)
            return item
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
                credit += max(1.0, self._weight(tenant) / self._min_weight())
            item = lane.pop(refuse)
            level.size -= 1
            credit -= 1.0
            if not lane.n:
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
        held = self._where.pop(job_id, None)
        if held is None:
            return None
        priority = max(0, min(PRIORITIES - 1, held.priority))
        level = self._levels[priority]
        lane = level.lanes[held.tenant_id]
        item = lane.remove(job_id)
        if item is not None:
            level.size -= 1
            if not lane:
                level.drop(held.tenant_id)
            if not level.size:
                self._nonempty.discard(priority)
        return item

    # --- reading ----------------------------------------------------------------------------

    def _active(self) -> Iterator[tuple[int, _Level]]:
        return ((p, self._levels[p]) for p in self._nonempty)

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
