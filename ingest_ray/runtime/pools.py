"""Stage pools: one pool of Ray actors per stage kind, with declared resources and size bounds.

A :class:`StagePool` lives in the Dispatcher's process. It starts ``min_size`` actors, sends each
call to the least-busy one, grows towards ``max_size`` while every actor is busy, shrinks back
after ``idle_s`` without work, and replaces actors that died. Actor names are readable in the Ray
dashboard: ``ingest-ray/<pool>/<n>``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from ingest_ray.config import Settings
from ingest_ray.pipelines.catalog import PoolSpec
from ingest_ray.runtime.stage_host import StageHost
from ingest_ray.runtime.work import StageResult
from ingest_ray.stages.base import StageInput


class StageActor:
    """The Ray actor of a pool: a thin shell around :class:`StageHost`."""

    def __init__(self, factories: Mapping[str, str], settings: Settings) -> None:
        self._host = StageHost(factories, settings)

    async def run(
        self, stage: str, items: Sequence[StageInput], timeout_s: float
    ) -> list[StageResult]:
        """Run one batch of one stage."""
        return await self._host.run(stage, items, timeout_s)

    async def ping(self) -> int:
        """Liveness probe; answers the number of calls served."""
        return self._host.calls

    async def shutdown(self) -> None:
        """Close the stages before the actor is killed."""
        await self._host.aclose()


RemoteStageActor = ray.remote(StageActor)


@dataclass
class _Member:
    handle: Any
    name: str
    busy: int = 0
    last_used: float = 0.0


class StagePool:
    """The actors of one pool and the choice of actor per call."""

    def __init__(
        self,
        spec: PoolSpec,
        factories: Mapping[str, str],
        settings: Settings,
        *,
        namespace_tag: str = "ingest-ray",
        namespace: str | None = None,
        idle_s: float = 60.0,
    ) -> None:
        self.spec = spec
        self._factories = dict(factories)
        self._settings = settings
        self._tag = namespace_tag
        self._namespace = namespace
        self._idle_s = idle_s
        self._members: list[_Member] = []
        self._serial = itertools.count()
        for _ in range(spec.min_size):
            self._spawn()

    @property
    def size(self) -> int:
        """Actors alive in the pool."""
        return len(self._members)

    def submit(self, stage: str, items: Sequence[StageInput], timeout_s: float) -> tuple[Any, str]:
        """Start a call; returns the ObjectRef and the name of the actor that runs it."""
        member = self._choose()
        member.busy += 1
        member.last_used = time.monotonic()
        return member.handle.run.remote(stage, list(items), timeout_s), member.name

    def done(self, actor_name: str) -> None:
        """A call on ``actor_name`` finished (successfully or not)."""
        for member in self._members:
            if member.name == actor_name:
                member.busy = max(0, member.busy - 1)

    def dead(self, actor_name: str) -> None:
        """``actor_name`` died: forget it; the next call spawns a replacement if needed."""
        self._members = [m for m in self._members if m.name != actor_name]
        while len(self._members) < self.spec.min_size:
            self._spawn()

    def shrink_idle(self) -> None:
        """Stop actors beyond ``min_size`` that have been idle for ``idle_s``."""
        now = time.monotonic()
        for member in list(self._members):
            if len(self._members) <= self.spec.min_size:
                return
            if member.busy == 0 and now - member.last_used > self._idle_s:
                self._members.remove(member)
                ray.kill(member.handle)

    def actor_names(self) -> list[str]:
        """Names of the live actors (for health output)."""
        return [m.name for m in self._members]

    def kill_all(self) -> None:
        """Stop every actor of the pool."""
        for member in self._members:
            ray.kill(member.handle)
        self._members.clear()

    def _choose(self) -> _Member:
        if not self._members:
            return self._spawn()
        least = min(self._members, key=lambda m: m.busy)
        if least.busy >= self.spec.actor_concurrency and self.size < self.spec.max_size:
            return self._spawn()
        return least

    def _spawn(self) -> _Member:
        name = f"{self._tag}/{self.spec.name}/{next(self._serial)}"
        res = self.spec.resources
        handle = RemoteStageActor.options(
            name=name,
            namespace=self._namespace,
            num_cpus=res.num_cpus,
            num_gpus=res.num_gpus,
            resources=dict(res.custom) or None,
            max_concurrency=self.spec.actor_concurrency,
            max_restarts=0,
        ).remote(self._factories, self._settings)
        member = _Member(handle=handle, name=name, last_used=time.monotonic())
        self._members.append(member)
        return member
