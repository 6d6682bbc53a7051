"""What a stage call's result means for its job: ``Outcome = Advance | Finish | Retry | Fail``.

The core proposes an outcome; the caller writes it to the ledger (``effects.transition_for``)
and then tells the core whether the ledger accepted it. Each outcome carries the job's budget
counters as they are after this try, so the ledger write and the in-memory item agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest_ray.runtime.work import StageFailure, WorkItem

LEASE_LOST = StageFailure(
    "LeaseExpired", "stage call lost or timed out (lease expired)", True, lost=True
)
ACTOR_LOST = StageFailure("ActorDied", "the stage actor died during the call", True, lost=True)


@dataclass(frozen=True)
class Advance:
    """Stage done; the job moves on to ``next_stage``."""

    item: WorkItem
    stage: str
    output: dict[str, Any]
    next_stage: str
    duration_s: float


@dataclass(frozen=True)
class Finish:
    """Stage done and nothing follows (last stage, or the stage asked to finish)."""

    item: WorkItem
    stage: str
    output: dict[str, Any]
    outcome: str | None
    duration_s: float


@dataclass(frozen=True)
class Retry:
    """Try ``attempt`` of ``stage`` failed; try ``attempt + 1`` after ``delay_s``. ``errors`` and
    ``losses`` are the stage's counters including this try."""

    item: WorkItem
    stage: str
    failure: StageFailure
    attempt: int
    delay_s: float
    errors: int = 0
    losses: int = 0


@dataclass(frozen=True)
class Fail:
    """The job failed for good at ``stage`` after ``attempt`` tries (a budget ran out, or the
    error was permanent)."""

    item: WorkItem
    stage: str
    failure: StageFailure
    attempt: int
    errors: int = 0
    losses: int = 0


Outcome = Advance | Finish | Retry | Fail
