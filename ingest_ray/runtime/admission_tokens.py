"""Rate-limit tokens the Dispatcher holds, and the line of jobs waiting for one. Ray-free.

Before a job whose next try calls a limited source is dispatched, it takes one of the tokens the
Dispatcher holds for that source. Without one it is parked on the Dispatcher's timer heap until
its slot in the source's line (slots are ``1 / rate`` apart, from when the bucket said the next
token comes), and counts as demand: once per round the Dispatcher asks the shared bucket for as
many tokens as are due (:meth:`SourceGate.wants`, one batched round trip for every source) and
hands them to the jobs as they come back. Tokens not used within ``ttl_s`` are dropped, so a
Dispatcher never hoards a burst the bucket would not grant. A job in the line keeps its age.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest_ray.adapters.ratelimit import Grant, RateSpec
from ingest_ray.tenants import SourceStats

#: how far ahead of the jobs' slots tokens are asked for
HORIZON_S = 0.5


@dataclass
class _Budget:
    spec: RateSpec
    tokens: int = 0
    expires_at: float = 0.0
    #: when the bucket said it has its next token (0: ask now)
    next_at: float = 0.0
    #: the slot the last job to join the line got
    last_slot: float = 0.0
    waiting: set[str] = field(default_factory=set)
    granted: int = 0
    throttled: int = 0


class SourceGate:
    """Tokens per source and the jobs waiting for them."""

    def __init__(self, limit: Callable[[str], RateSpec | None], *, ttl_s: float = 1.0) -> None:
        self._limit = limit
        self._ttl_s = ttl_s
        self._budgets: dict[str, _Budget] = {}
        self._source_of: dict[str, str] = {}

    def take(self, job_id: str, source: str, now: float) -> float | None:
        """A token for ``job_id``'s next try (``None``: taken, go), or the clock time at which
        to try again (the job waits on the timer heap until then)."""
        budget = self._budget(source)
        if budget is None:
            return None
        if budget.tokens and now >= budget.expires_at:
            budget.tokens = 0
        if budget.tokens > 0:
            budget.tokens -= 1
            self._leave(job_id)
            return None
        budget.throttled += 1
        if job_id in budget.waiting:  # in line already: come back when the bucket said
            return max(now, budget.next_at)
        self._leave(job_id)
        budget.waiting.add(job_id)
        self._source_of[job_id] = source
        slot = max(now, budget.next_at, budget.last_slot + 1.0 / budget.spec.rate)
        budget.last_slot = slot
        return slot

    def wants(self, now: float) -> dict[str, int]:
        """Tokens to ask the bucket for now: the jobs due within the horizon, beyond the tokens
        held, for sources whose next token should have come."""
        out: dict[str, int] = {}
        for source, budget in self._budgets.items():
            if not budget.waiting or now < budget.next_at:
                continue
            due = math.ceil(budget.spec.burst + budget.spec.rate * HORIZON_S)
            held = budget.tokens if now < budget.expires_at else 0
            n = min(len(budget.waiting), due) - held
            if n > 0:
                out[source] = n
        return out

    def granted(self, source: str, grant: Grant, now: float) -> None:
        """What the bucket gave."""
        budget = self._budget(source)
        if budget is None:
            return
        if now >= budget.expires_at:
            budget.tokens = 0
        budget.tokens += grant.granted
        budget.granted += grant.granted
        budget.expires_at = now + self._ttl_s
        budget.next_at = now + grant.wait_s if grant.wait_s > 0 else now

    def failed(self, now: float, retry_s: float = 0.5) -> None:
        """The bucket could not be asked (Redis away): ask again after ``retry_s``."""
        for budget in self._budgets.values():
            budget.next_at = max(budget.next_at, now + retry_s)

    def waiting_for(self, job_id: str) -> str | None:
        """The source ``job_id`` waits for, if any."""
        return self._source_of.get(job_id)

    def forget(self, job_id: str) -> None:
        """The job is gone (finished, cancelled, refused)."""
        self._leave(job_id)

    def _leave(self, job_id: str) -> None:
        source = self._source_of.pop(job_id, None)
        if source is None:
            return
        budget = self._budgets[source]
        budget.waiting.discard(job_id)
        if not budget.waiting:
            budget.last_slot = 0.0

    def _budget(self, source: str) -> _Budget | None:
        budget = self._budgets.get(source)
        if budget is None:
            spec = self._limit(source)
            if spec is None:
                return None
            budget = self._budgets[source] = _Budget(spec)
        return budget

    def stats(self, now: float) -> dict[str, SourceStats]:
        """Per source: jobs waiting, tokens held, when the next comes, totals."""
        out = {}
        for source, b in self._budgets.items():
            held = b.tokens if now < b.expires_at else 0
            out[source] = SourceStats(
                source=source, rate_per_s=b.spec.rate, waiting=len(b.waiting), tokens=held,
                next_token_in_s=round(max(0.0, b.next_at - now), 3) if b.waiting else None,
                granted=b.granted, throttled=b.throttled,
            )  # fmt: skip
        return out

    def prune(self) -> None:
        """Forget sources nobody waits for (host buckets come and go)."""
        idle = [s for s, b in self._budgets.items() if not b.waiting and not b.tokens]
        for source in idle:
            del self._budgets[source]
