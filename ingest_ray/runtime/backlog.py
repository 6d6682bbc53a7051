"""The backlog beyond the Dispatcher's memory, pulled from the ledger in fair order. Ray-free.

The Dispatcher holds at most its high watermark of jobs. While it is paused there, jobs
admitted meanwhile are not held: they wait in the ledger, queued, and ingress keeps admitting
(it pauses only when the ledger's unheld backlog passes ``intake_high``, and resumes below
``intake_low``), so the backlog waits in the ledger rather than in Kafka's arrival order.
Whenever there is room, the Dispatcher pulls from the ledger's fair backlog index (queued jobs
per (tenant, priority): ``Ledger.queued_groups`` / ``queued_ids``): the room is shared among
tenants by weight (water-filling: a tenant with less waiting leaves the rest of its part to the
others), and a tenant's part goes to its groups by ``priority + age / aging_s``, oldest first
within a group. What enters memory so follows the order in which it leaves it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ulid import ULID

from ingest_ray.ledger.base import QueuedGroup
from ingest_ray.runtime.parts import LedgerReader

if TYPE_CHECKING:
    from ingest_ray.runtime.dispatch_core import DispatcherCore

Group = tuple[str, int]
PAGE = 1000
MAX_PAGES = 20


def water_fill(
    demand: Mapping[str, int], weight: Callable[[str], float], room: int
) -> dict[str, int]:
    """Share ``room`` among tenants in proportion to their weights, none above its demand;
    what a tenant cannot use goes to the others."""
    alloc = dict.fromkeys(demand, 0)
    open_ = {t for t, d in demand.items() if d > 0}
    left = room
    while left > 0 and open_:
        total = sum(weight(t) for t in open_)
        given = 0
        for tenant in sorted(open_, key=lambda t: (-weight(t), t)):
            share = max(1, math.floor(left * weight(tenant) / total))
            share = min(share, demand[tenant] - alloc[tenant], left - given)
            if share <= 0:
                continue
            alloc[tenant] += share
            given += share
            if alloc[tenant] >= demand[tenant]:
                open_.discard(tenant)
        if given == 0:
            break
        left -= given
    return {t: n for t, n in alloc.items() if n}


def plan_pull(
    groups: Sequence[QueuedGroup],
    held: Mapping[Group, int],
    room: int,
    *,
    weight: Callable[[str], float],
    now_s: float,
    aging_s: float,
) -> list[tuple[QueuedGroup, int]]:
    """How many jobs to pull from each group: tenants by weight, groups by aged priority."""
    unheld = {(g.tenant_id, g.priority): max(0, g.count - held.get((g.tenant_id, g.priority), 0))
              for g in groups}  # fmt: skip
    demand: dict[str, int] = {}
    for (tenant, _), n in unheld.items():
        demand[tenant] = demand.get(tenant, 0) + n
    out: list[tuple[QueuedGroup, int]] = []
    for tenant, part in water_fill(demand, weight, room).items():
        mine = [g for g in groups if g.tenant_id == tenant]
        mine.sort(key=lambda g: g.priority + _age_s(g.oldest_job_id, now_s) / aging_s, reverse=True)
        left = part
        for group in mine:
            take = min(left, unheld[(group.tenant_id, group.priority)])
            if take > 0:
                out.append((group, take))
                left -= take
    return out


def _age_s(job_id: str, now_s: float) -> float:
    try:
        return max(0.0, now_s - ULID.from_str(job_id).timestamp)
    except ValueError:
        return 0.0


class Backlog:
    """What the ledger holds queued beyond this Dispatcher, and the fair pull from it."""

    def __init__(
        self,
        ledger: LedgerReader,
        *,
        intake_high: int = 200_000,
        intake_low: int = 100_000,
        refresh_s: float = 1.0,
        max_pull: int = 5000,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.intake_high, self.intake_low = intake_high, intake_low
        self.refresh_s, self.max_pull = refresh_s, max_pull
        self.wall = wall
        #: queued jobs in the ledger this Dispatcher does not hold (as of the last refresh,
        #: plus what was admitted and not held since)
        self.unheld = 0
        self.intake_paused = False
        self._groups: list[QueuedGroup] = []
        self._cursor: dict[Group, str] = {}
        self._due = 0.0

    def holds(self, core: DispatcherCore) -> bool:
        """Whether newly admitted jobs are held now (not while the Dispatcher is paused)."""
        return not core.paused

    def added(self, count: int) -> None:
        """Jobs admitted and left in the ledger."""
        self.unheld += count
        self._update_intake()

    async def refresh(self, core: DispatcherCore) -> None:
        """Read the ledger's groups and how many of their jobs this Dispatcher holds."""
        self._groups = await asyncio.to_thread(self.ledger.queued_groups)
        held = core.admission.queued_held
        self.unheld = sum(
            max(0, g.count - held.get((g.tenant_id, g.priority), 0)) for g in self._groups
        )
        self._update_intake()

    async def fill(self, core: DispatcherCore, look_up: Callable[[list[str]], None]) -> int:
        """Every ``refresh_s``: refresh, and while the Dispatcher has room, pull jobs from the
        ledger in fair order (``look_up`` reads and holds them). Answers how many."""
        now = core.clock()
        if now < self._due:
            return 0
        self._due = now + self.refresh_s
        await self.refresh(core)
        if core.paused or not self.unheld:
            return 0
        room = min(self.max_pull, core.high_watermark - len(core.held_ids()))
        ids = await self.pull_ids(core, room)
        look_up(ids)
        return len(ids)

    async def pull_ids(
        self, core: DispatcherCore, room: int, *, refresh: bool = False
    ) -> list[str]:
        """Ids of up to ``room`` queued jobs nobody here holds, in fair order."""
        if room <= 0:
            return []
        if refresh:
            await self.refresh(core)
        plan = plan_pull(
            self._groups, core.admission.queued_held, room, weight=core.admission.weight,
            now_s=self.wall(), aging_s=core.aging_s,
        )  # fmt: skip
        out: list[str] = []
        for group, count in plan:
            out += await asyncio.to_thread(self._ids_of, group, count, core.holds)
        return out

    def _ids_of(self, group: QueuedGroup, count: int, holds: Callable[[str], bool]) -> list[str]:
        key = (group.tenant_id, group.priority)
        after = self._cursor.get(key)
        found: list[str] = []
        for _ in range(MAX_PAGES):
            ids = self.ledger.queued_ids(group.tenant_id, group.priority, after=after, limit=PAGE)
            found += [i for i in ids if not holds(i)][: count - len(found)]
            if len(found) >= count or len(ids) < PAGE:
                break
            after = ids[-1]
        if len(found) < count:
            self._cursor.pop(key, None)  # from the oldest again next time
        elif found:
            self._cursor[key] = found[-1]
        return found

    def _update_intake(self) -> None:
        if not self.intake_paused and self.unheld >= self.intake_high:
            self.intake_paused = True
        elif self.intake_paused and self.unheld <= self.intake_low:
            self.intake_paused = False
