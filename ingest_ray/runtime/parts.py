"""The parts the Dispatcher's loop is given, as protocols: a ledger reader, a transition writer,
a pool launcher and an inbox (plus an injected clock). The runtime implements them in
``ledger_cache.py`` (in the Dispatcher's process), ``pools.py`` and ``control.py``; tests
implement them with fakes and ``InMemoryLedger``."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ingest_ray.control import InboxEntry
from ingest_ray.errors import IngestError, LedgerError
from ingest_ray.ledger.base import (
    Job,
    JobFilter,
    Page,
    QueuedGroup,
    TransitionOutcome,
    TransitionRequest,
)
from ingest_ray.runtime.work import Dispatch, StageResult
from ingest_ray.stages.base import StageInput

TransitionResult = TransitionOutcome | LedgerError


class CallLost(IngestError):
    """A stage call that will never answer: its actor died (or could not be placed)."""

    retryable = True


class LedgerReader(Protocol):
    """Reads the loop makes (blocking calls, run on a thread)."""

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]: ...
    def list_jobs(self, flt: JobFilter, *, cursor: str | None = None, limit: int = 50) -> Page: ...
    def expired_leases(self, *, now: datetime | None = None, limit: int = 100) -> list[str]: ...
    def queued_groups(self) -> list[QueuedGroup]: ...
    def queued_ids(
        self, tenant_id: str, priority: int, *, after: str | None = None, limit: int = 100
    ) -> list[str]: ...


class TransitionWriter(Protocol):
    """Applies transitions in order; answers only after the ledger did (raises when it is away)."""

    async def transition_many(
        self, requests: Sequence[TransitionRequest]
    ) -> list[TransitionResult]: ...


@dataclass(frozen=True)
class PoolStats:
    """One pool, for status and metrics."""

    size: int
    target: int
    busy: int
    slots: int
    backlog: int
    actors: tuple[str, ...] = ()


class Launcher(Protocol):
    """Runs stage calls on pools of workers."""

    def launch(
        self, dispatch: Dispatch, inputs: list[StageInput], timeout_s: float
    ) -> Awaitable[list[StageResult]]:
        """Start a call; the awaitable raises :class:`CallLost` if its worker died."""
        ...

    def cancel(self, dispatch: Dispatch, job_ids: Sequence[str]) -> None:
        """Tell the worker running ``dispatch`` that these of its jobs were cancelled."""
        ...

    async def compensate(self, pool: str, stage: str, inputs: list[StageInput]) -> None:
        """Take back a stage's side effects for cancelled jobs (raises if it could not)."""
        ...

    def maintain(
        self, backlog: Mapping[str, int], in_flight: Mapping[str, int],
        upstream: Mapping[str, int] | None = None,
    ) -> dict[str, int]:  # fmt: skip
        """Size the pools to their backlog (``upstream``: jobs on their way to each pool of a
        pipeline with an accelerated pool, which starts its actors ahead of them); replace and
        release actors; answers each pool's call budget (the core dispatches no more calls to a
        pool than that)."""
        ...

    def idle(self, pool: str) -> int:
        """Actors of ``pool`` with no call running or queued (1 for a pool with no actor yet:
        a call starts one)."""
        ...

    def stats(self) -> dict[str, PoolStats]:
        """Per pool figures."""
        ...

    def close(self) -> None:
        """Stop every worker."""
        ...


class Inbox(Protocol):
    """Where control commands arrive (blocking calls, run on a thread)."""

    def read(
        self, consumer: str, count: int = 500, *, pending: bool = True
    ) -> list[InboxEntry]: ...
    def ack(self, entry_ids: list[str]) -> None: ...


@dataclass
class LoopStats:
    """What the Dispatcher holds and how it fares; crosses the actor boundary as is."""

    state: str = "starting"
    held: int = 0
    ready: dict[str, int] = field(default_factory=dict)
    ready_by_priority: list[int] = field(default_factory=lambda: [0] * 10)
    timers: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    settling: int = 0
    paused: bool = False
    draining: bool = False
    recovered: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    pools: dict[str, PoolStats] = field(default_factory=dict)
    ledger_error: str | None = None
    ledger_error_since: float | None = None
    last_error: str | None = None
    loop_errors: int = 0
    pending_cancels: int = 0
