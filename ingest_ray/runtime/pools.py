"""Stage pools on Ray: one pool of actors per stage kind, sized to its backlog.

:class:`RayLauncher` is the Dispatcher's :class:`~ingest_ray.runtime.parts.Launcher`. Each
:class:`StagePool` lives in the Dispatcher's process, sends each call to its least-busy actor,
replaces actors that died, and follows the target size its sizer gives (backlog, bounds and what
the cluster can place). Actors are owned by the Dispatcher, so they end with it; a restarted
Dispatcher starts fresh ones. Their names read well in the Ray dashboard:
``<runtime>/<pool>/<incarnation>-<n>``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.autoscaler.sdk import request_resources
from ray.exceptions import ActorDiedError, RayActorError, TaskCancelledError

from ingest_ray.config import Settings
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.runtime.parts import CallLost, PoolStats
from ingest_ray.runtime.priority import lower_priority
from ingest_ray.runtime.sizing import (
    Decision,
    PoolLoad,
    PoolShape,
    PoolSizer,
    autoscaler_bundles,
    default_max_size,
    plan,
)
from ingest_ray.runtime.stage_host import StageHost
from ingest_ray.runtime.work import Dispatch, StageFailure, StageResult
from ingest_ray.stages.base import StageInput

#: the concurrency group of a stage actor's control calls (cancel, ping)
CONTROL_GROUP = "control"


class StageActor:
    """The Ray actor of a pool: a thin shell around :class:`StageHost`.

    ``run`` and ``compensate`` take the actor's call slots (``max_concurrency``, the pool's
    ``actor_concurrency``); ``cancel`` and ``ping`` run in a concurrency group of their own, so a
    cancellation or a liveness probe reaches an actor whose every slot is busy (with one slot, a
    cancel queued behind the very call it was meant to stop)."""

    def __init__(
        self, factories: Mapping[str, str], settings: Settings, pool: str = "", nice: int = 0
    ) -> None:
        if nice > 0:  # the actor has a worker process of its own, which ends with it
            lower_priority(nice)
        self._host = StageHost(factories, settings)
        self._host.warm()  # models load as the actor starts, not at its first call
        self._label = f"pool={pool} stages={','.join(sorted(factories))}"

    def __repr__(self) -> str:
        # what the Ray dashboard and state API show for the actor (``repr_name``)
        return f"StageActor({self._label})"

    async def run(
        self, stage: str, items: Sequence[StageInput], timeout_s: float
    ) -> list[StageResult]:
        """Run one batch of one stage."""
        return await self._host.run(stage, items, timeout_s)

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def cancel(self, job_ids: Sequence[str]) -> None:
        """Tell the stages working on these jobs to stop."""
        self._host.cancel(job_ids)

    async def compensate(self, stage: str, items: Sequence[StageInput]) -> None:
        """Take back ``stage``'s side effects for cancelled jobs."""
        await self._host.compensate(stage, items)

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def ping(self) -> int:
        """Liveness probe; answers the number of calls served."""
        return self._host.calls

    async def shutdown(self) -> None:
        """Close the stages before the actor is killed."""
        await self._host.aclose()


RemoteStageActor = ray.remote(concurrency_groups={CONTROL_GROUP: 2})(StageActor)  # type: ignore[call-overload]


@dataclass
class _Member:
    handle: Any
    name: str
    busy: int = 0
    #: the pages (or jobs, where the pages are unknown) of its calls running or queued
    work: int = 0
    #: when the pool asked Ray for it (``time.monotonic``)
    spawned_at: float = 0.0
    #: the outstanding liveness probe (a ``ping``), as a concurrent future
    probe: Any = None
    #: whether it has answered a probe (the first answer tells the sizer how long a start takes)
    ready: bool = False


class StagePool:
    """The actors of one pool, the choice of actor per call, and their number (a
    :class:`~ingest_ray.runtime.sizing.PoolSizer` decides it from the backlog)."""

    def __init__(
        self,
        spec: PoolSpec,
        factories: Mapping[str, str],
        settings: Settings,
        *,
        runtime: str,
        namespace: str | None,
        idle_s: float = 60.0,
        max_size: int | None = None,
    ) -> None:
        self.spec = spec
        self._factories = dict(factories)
        self._settings = settings
        self._prefix = f"{runtime}/{spec.name}/{secrets.token_hex(2)}"
        self._namespace = namespace
        self.sizer = PoolSizer(PoolShape.from_spec(spec, max_size=max_size), idle_grace_s=idle_s)
        self._members: list[_Member] = []
        self._serial = itertools.count()
        self.decision: Decision | None = None
        self.backlog = 0
        for _ in range(spec.min_size):
            self._spawn()

    @property
    def size(self) -> int:
        """Actors alive (or being placed) in the pool."""
        return len(self._members)

    @property
    def max_size(self) -> int:
        """How far the pool may grow."""
        return self.sizer.shape.max_size

    def budget(self) -> int:
        """Calls the pool takes at once: what its actors run concurrently, within the spec's
        ``max_in_flight``; at least one, so a pool at size 0 starts an actor for a backlog."""
        capacity = self.size * self.spec.actor_concurrency
        return max(1, min(self.spec.max_in_flight, capacity))

    def submit(
        self, stage: str, items: Sequence[StageInput], timeout_s: float
    ) -> tuple[Any, str, int]:
        """Start a call; returns the ObjectRef, the name of the actor that runs it and the
        call's work (give it back to :meth:`done`)."""
        work = call_work(items)
        member = self._choose(by_work=self.spec.accelerated)
        member.busy += 1
        member.work += work
        self.sizer.call_started(member.name)
        return member.handle.run.remote(stage, list(items), timeout_s), member.name, work

    def done(
        self, actor_name: str, work: int = 0, *, jobs: int = 0, seconds: float | None = None
    ) -> None:
        """A call on ``actor_name`` finished (successfully or not); one that ran its ``jobs`` in
        ``seconds`` teaches the sizer the pool's service time."""
        for member in self._members:
            if member.name == actor_name:
                member.busy = max(0, member.busy - 1)
                member.work = max(0, member.work - work)
        self.sizer.call_finished(actor_name, jobs=jobs, seconds=seconds)

    def _answered(self, member: _Member) -> None:
        """``member`` answered a probe: the first answer times its start (to within a resize
        interval, the probes' pace)."""
        if not member.ready:
            member.ready = True
            self.sizer.actor_ready(time.monotonic() - member.spawned_at)

    def dead(self, actor_name: str) -> None:
        """``actor_name`` died: forget it; replacements follow the backlog."""
        self._members = [m for m in self._members if m.name != actor_name]
        self.sizer.actor_gone(actor_name)
        while len(self._members) < self.spec.min_size:
            self._spawn()

    def probe(self) -> list[str]:
        """Find actors that died while idle (their node was lost): each actor has one ``ping``
        outstanding at a time; one that answers ``ActorDiedError`` is replaced now, not when a
        job is next sent to it. Never blocks; answers the names found dead."""
        dead = []
        for member in list(self._members):
            if member.probe is None:
                member.probe = member.handle.ping.remote().future()
                continue
            if not member.probe.done():
                continue  # still starting, or busy: ask again once it answers
            error, member.probe = member.probe.exception(), None
            if isinstance(error, ActorDiedError):
                dead.append(member.name)
                self.dead(member.name)
            elif error is None:
                self._answered(member)
        return dead

    def cancel(self, actor_name: str, job_ids: Sequence[str]) -> None:
        """Forward a cancellation to the actor running those jobs."""
        for member in self._members:
            if member.name == actor_name:
                member.handle.cancel.remote(list(job_ids))

    def compensate_ref(self, stage: str, items: Sequence[StageInput]) -> Any:
        """Start a compensation on the least busy actor."""
        return self._choose().handle.compensate.remote(stage, list(items))

    def apply(self, decision: Decision) -> None:
        """Start and release actors as the sizer decided."""
        self.decision = decision
        for _ in range(decision.start):
            self._spawn()
        for name in decision.release:
            member = next((m for m in self._members if m.name == name and m.busy == 0), None)
            if member is not None:
                self._members.remove(member)
                self.sizer.actor_gone(name)
                ray.kill(member.handle)

    def idle(self) -> int:
        """Actors with no call (1 with no actor at all: a call starts one)."""
        if not self._members:
            return 1
        return sum(1 for m in self._members if m.busy == 0)

    def stats(self) -> PoolStats:
        """Size, target, busy slots and backlog."""
        busy = sum(m.busy for m in self._members)
        slots = self.size * self.spec.actor_concurrency
        names = tuple(m.name for m in self._members)
        target = self.decision.wanted if self.decision else self.size
        return PoolStats(self.size, target, busy, slots, self.backlog, names)

    def kill_all(self) -> None:
        """Stop every actor of the pool."""
        for member in self._members:
            ray.kill(member.handle)
        self._members.clear()

    def _choose(self, *, by_work: bool = False) -> _Member:
        """The actor with the fewest calls; for an accelerator pool (``by_work``), an idle one
        or else the one with the least work ahead of it, so a call queues behind the actor
        that frees up first, not behind a 16-page document while another's 1-page one ends."""
        if not self._members:
            return self._spawn()
        if by_work:
            return min(self._members, key=lambda m: (m.busy > 0, m.work, m.busy))
        return min(self._members, key=lambda m: m.busy)

    def _spawn(self) -> _Member:
        name = f"{self._prefix}-{next(self._serial)}"
        res = self.spec.resources
        handle = RemoteStageActor.options(
            name=name,
            namespace=self._namespace,
            num_cpus=res.num_cpus,
            num_gpus=res.num_gpus,
            resources=dict(res.custom) or None,
            max_concurrency=self.spec.actor_concurrency,
            max_restarts=0,
        ).remote(self._factories, self._settings, self.spec.name, self.spec.nice)
        member = _Member(handle=handle, name=name, spawned_at=time.monotonic())
        self._members.append(member)
        self.sizer.actor_started(name)
        return member


class RayLauncher:
    """The Dispatcher's pools on Ray (implements ``parts.Launcher``). Every ``maintain`` sizes
    every pool to its backlog against one snapshot of the cluster's free resources, asks the
    autoscaler (if there is one) for what cannot be placed, and answers each pool's budget."""

    def __init__(
        self, catalog: Catalog, settings: Settings, *, runtime: str, namespace: str, idle_s: float
    ) -> None:
        used = {s.pool_name for p in catalog.pipelines.values() for s in p.stages}
        totals = _cluster_totals()
        self.pools = {
            name: StagePool(
                spec,
                _factories(catalog, name),
                settings,
                runtime=runtime,
                namespace=namespace,
                idle_s=idle_s,
                max_size=default_max_size(spec, totals),
            )
            for name, spec in catalog.pools.items()
            if name in used
        }
        self._actor_of: dict[int, str] = {}
        self._requested: list[dict[str, float]] = []

    async def _call(self, dispatch: Dispatch, ref: Any, actor: str, work: int) -> list[StageResult]:
        pool = self.pools[dispatch.pool]
        started, seconds = time.monotonic(), None
        try:
            results = list(await ref)
            seconds = time.monotonic() - started
            return results
        except TaskCancelledError:
            failure = StageFailure("JobCancelledError", "the call was cancelled", retryable=False)
            return [failure] * len(dispatch.items)
        except RayActorError as exc:
            pool.dead(actor)
            raise CallLost(f"{actor}: {type(exc).__name__}") from exc
        finally:
            pool.done(actor, work, jobs=len(dispatch.items), seconds=seconds)
            self._actor_of.pop(dispatch.dispatch_id, None)

    def launch(self, dispatch: Dispatch, inputs: list[StageInput], timeout_s: float) -> Any:
        """Start the call on the pool's least busy actor."""
        ref, actor, work = self.pools[dispatch.pool].submit(dispatch.stage, inputs, timeout_s)
        self._actor_of[dispatch.dispatch_id] = actor
        return self._call(dispatch, ref, actor, work)

    def cancel(self, dispatch: Dispatch, job_ids: Sequence[str]) -> None:
        """Forward the cancellation to the actor running ``dispatch``."""
        actor = self._actor_of.get(dispatch.dispatch_id)
        if actor is not None:
            self.pools[dispatch.pool].cancel(actor, job_ids)

    async def compensate(self, pool: str, stage: str, inputs: list[StageInput]) -> None:
        """Run the stage's compensation and wait for it."""
        await self.pools[pool].compensate_ref(stage, inputs)

    def maintain(
        self, backlog: Mapping[str, int], in_flight: Mapping[str, int],
        upstream: Mapping[str, int] | None = None,
    ) -> dict[str, int]:  # fmt: skip
        """Size every pool to its backlog within what the cluster can place; answers each
        pool's call budget."""
        free: dict[str, float] = ray.available_resources()  # type: ignore[no-untyped-call]
        loads, upstream = [], upstream or {}
        for name, pool in self.pools.items():
            pool.probe()
            pool.backlog = backlog.get(name, 0)
            load = PoolLoad(pool.backlog, in_flight.get(name, 0), upstream.get(name, 0))
            loads.append((pool.sizer, load))
        decisions = plan(loads, free)
        for name, decision in decisions.items():
            self.pools[name].apply(decision)
        self._request(autoscaler_bundles(decisions.values()))
        return {name: pool.budget() for name, pool in self.pools.items()}

    def _request(self, bundles: list[dict[str, float]]) -> None:
        """Ask the autoscaler for the actors that do not fit (only when that changes)."""
        if bundles == self._requested:
            return
        self._requested = bundles
        with contextlib.suppress(Exception):  # no autoscaler: nothing listens, nothing breaks
            request_resources(bundles=bundles)

    def budgets(self) -> dict[str, int]:
        """Each pool's call budget now."""
        return {name: pool.budget() for name, pool in self.pools.items()}

    def idle(self, pool: str) -> int:
        """Actors of ``pool`` with no call running or queued."""
        found = self.pools.get(pool)
        return 1 if found is None else found.idle()

    def stats(self) -> dict[str, PoolStats]:
        """Per pool figures."""
        return {name: pool.stats() for name, pool in self.pools.items()}

    def close(self) -> None:
        """Stop every pool's actors."""
        for pool in self.pools.values():
            pool.kill_all()


def call_work(items: Sequence[StageInput]) -> int:
    """A call's work: its documents' pages as ``pdf_fetch`` probed them, one per document whose
    pages are unknown."""
    total = 0
    for item in items:
        pages = (item.outputs.get("pdf_fetch") or {}).get("pdf_pages")
        total += pages if isinstance(pages, int) and pages > 0 else 1
    return total


def _cluster_totals() -> dict[str, float]:
    """The cluster's resources; on one machine, CPUs no more than it has cores (a local Ray
    advertises more logical CPUs so I/O-bound stages can share one)."""
    totals: dict[str, float] = dict(ray.cluster_resources())  # type: ignore[no-untyped-call]
    if len(ray.nodes()) <= 1:  # type: ignore[no-untyped-call]
        totals["CPU"] = min(totals.get("CPU", 0.0), float(os.cpu_count() or 1))
    return totals


def _factories(catalog: Catalog, pool: str) -> dict[str, str]:
    stages = {s.stage for p in catalog.pipelines.values() for s in p.stages if s.pool_name == pool}
    return {name: catalog.stages[name] for name in stages}
