"""Fakes for the Dispatcher loop's parts: a launcher, an inbox and a ledger writer, all in
process, plus a builder that wires a :class:`DispatchLoop` over an :class:`InMemoryLedger`."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_ray.config import Settings
from ingest_ray.control import Command, InboxEntry
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.ledger.base import NewJob, TransitionRequest
from ingest_ray.metrics import RuntimeMetrics
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.retry import RetryPolicy
from ingest_ray.runtime.dispatch_core import DispatcherCore
from ingest_ray.runtime.loop import DispatchLoop, LoopTimings
from ingest_ray.runtime.parts import PoolStats, TransitionResult
from ingest_ray.runtime.work import Dispatch, StageResult
from ingest_ray.stages.base import StageInput, StageOutput
from ingest_ray.testing import InMemoryLedger

Behaviour = Callable[[Dispatch, list[StageInput]], "list[StageResult] | BaseException | None"]


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=60))

    return run


def ok(dispatch: Dispatch, inputs: list[StageInput]) -> list[StageResult]:
    """Every item succeeds."""
    return [StageOutput(data={"stage": dispatch.stage}) for _ in inputs]


@dataclass
class Call:
    dispatch: Dispatch
    inputs: list[StageInput]
    future: asyncio.Future[list[StageResult]]


@dataclass
class FakeLauncher:
    """Runs calls as futures: resolved at once by ``behaviour``, or left for the test."""

    behaviour: Behaviour = ok
    calls: list[Call] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    compensated: list[tuple[str, str]] = field(default_factory=list)
    fail_compensation: bool = False
    budgets: dict[str, int] = field(default_factory=dict)
    maintained: list[dict[str, int]] = field(default_factory=list)
    looked_ahead: list[dict[str, int]] = field(default_factory=list)
    #: per pool, actors with no call (a pool not named has plenty)
    idle_actors: dict[str, int] = field(default_factory=dict)

    def launch(
        self, dispatch: Dispatch, inputs: list[StageInput], timeout_s: float
    ) -> asyncio.Future[list[StageResult]]:
        future: asyncio.Future[list[StageResult]] = asyncio.get_running_loop().create_future()
        self.calls.append(Call(dispatch, inputs, future))
        outcome = self.behaviour(dispatch, inputs)
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        elif outcome is not None:
            future.set_result(outcome)
        return future

    def cancel(self, dispatch: Dispatch, job_ids: Sequence[str]) -> None:
        self.cancelled += list(job_ids)

    async def compensate(self, pool: str, stage: str, inputs: list[StageInput]) -> None:
        if self.fail_compensation:
            raise RuntimeError("index unreachable")
        self.compensated += [(stage, i.job_id) for i in inputs]

    def maintain(
        self, backlog: Mapping[str, int], in_flight: Mapping[str, int],
        upstream: Mapping[str, int] | None = None,
    ) -> dict[str, int]:  # fmt: skip
        self.maintained.append(dict(backlog))
        self.looked_ahead.append(dict(upstream or {}))
        return dict(self.budgets)

    def idle(self, pool: str) -> int:
        return self.idle_actors.get(pool, 1_000_000)

    def stats(self) -> dict[str, PoolStats]:
        return {}

    def close(self) -> None:
        return None

    def pending(self) -> list[Call]:
        return [c for c in self.calls if not c.future.done()]


class FakeInbox:
    """Commands in a list; an entry stays until acknowledged (read again after a restart)."""

    def __init__(self) -> None:
        self.entries: dict[str, Command | None] = {}
        self._ids = itertools.count(1)

    def push(self, command: Command | None) -> None:
        self.entries[f"{next(self._ids)}-0"] = command

    def read(self, consumer: str, count: int = 500, *, pending: bool = True) -> list[InboxEntry]:
        return [InboxEntry(i, c) for i, c in list(self.entries.items())[:count]]

    def ack(self, entry_ids: list[str]) -> None:
        for entry_id in entry_ids:
            self.entries.pop(entry_id, None)


class LedgerWriter:
    """The transition writer over a ledger (raises while ``ledger.down`` is set)."""

    def __init__(self, ledger: InMemoryLedger) -> None:
        self.ledger = ledger
        self.writes = 0

    async def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionResult]:
        self.writes += 1
        await asyncio.sleep(0)
        return self.ledger.transition_many(requests)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class WallClock:
    """The ledger's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def catalog(
    *, retry: RetryPolicy | None = None, budget: int = 4, accelerated: str | None = None
) -> Catalog:
    """Pipeline ``p``: a -> b -> idx (idx compensates, like the index); the pool named by
    ``accelerated`` asks for a custom resource."""
    cat = Catalog()
    for name in ("a", "b", "idx"):
        res = Resources(custom={"accel": 1.0}) if name == accelerated else Resources()
        cat.register_stage(name, "x:y", PoolSpec(name, res, max_in_flight=budget, batch_size=4))
    policy = retry or RetryPolicy(max_attempts=3, base_delay_s=1, max_delay_s=8)
    stages = (
        StageSpec("a", retry=policy, timeout_s=10, lease_grace_s=0),
        StageSpec("b", retry=policy, timeout_s=10, lease_grace_s=0),
        StageSpec("idx", retry=policy, timeout_s=10, lease_grace_s=0, compensate=True),
    )
    cat.register_pipeline(Pipeline("p", stages, mapping_after="idx"))
    return cat


@dataclass
class Rig:
    loop: DispatchLoop
    ledger: InMemoryLedger
    launcher: FakeLauncher
    inbox: FakeInbox
    clock: Clock
    wall: WallClock
    writer: LedgerWriter

    def create(self, doc: str, **kw: Any) -> str:
        source = DocumentSource(kind=SourceKind.TEXT, value=doc)
        job = NewJob(tenant_id="t", doc_key=doc, pipeline=kw.pop("pipeline", "p"),
                     metadata={"source": source.model_dump(mode="json")}, **kw)  # fmt: skip
        return self.ledger.create(job).job_id

    async def started_call(self, doc: str = "doc-1") -> tuple[str, Call]:
        """Create a job for ``doc``, start the loop and step until its first call is out."""
        job = self.create(doc)
        await self.loop.start()
        await self.until(lambda: bool(self.launcher.pending()))
        return job, self.launcher.pending()[0]

    async def steps(self, n: int = 1) -> None:
        for _ in range(n):
            await self.loop.step()

    async def until(
        self, predicate: Callable[[], bool], steps: int = 200, *, tick: float = 0.0
    ) -> None:
        """Step until ``predicate`` holds, moving the fake clock ``tick`` seconds per step."""
        for _ in range(steps):
            if predicate():
                return
            self.clock.now += tick
            await self.loop.step()
        raise AssertionError("condition not met")

    def status(self, job_id: str) -> str:
        return self.ledger.get(job_id).status.value


def rig(
    behaviour: Behaviour = ok,
    *,
    cat: Catalog | None = None,
    ledger: InMemoryLedger | None = None,
    inbox: FakeInbox | None = None,
) -> Rig:
    clock, wall = Clock(), WallClock()
    ledger = ledger or InMemoryLedger(clock=wall)
    cat = cat or catalog()
    launcher, inbox = FakeLauncher(behaviour), inbox or FakeInbox()
    writer = LedgerWriter(ledger)
    loop = DispatchLoop(
        cat, Settings(topic_results="res", topic_mapping="map", topic_deadletter="dlq"),
        core=DispatcherCore(cat, clock=clock), ledger=ledger, writer=writer, launcher=launcher,
        inbox=inbox, metrics=RuntimeMetrics(),
        timings=LoopTimings(inbox_s=0, reconcile_s=3600, maintain_s=3600, idle_wait_s=0.001),
        wall=wall.timestamp,
    )  # fmt: skip
    return Rig(loop, ledger, launcher, inbox, clock, wall, writer)
