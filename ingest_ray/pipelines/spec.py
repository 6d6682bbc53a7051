"""Pipelines as data: ordered stage specs with pool, retry policy, timeout and resources."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest_ray.retry import DEFAULT_RETRY, LOSS_RETRY, RetryPolicy


@dataclass(frozen=True, slots=True)
class Resources:
    """What one actor of a stage pool asks Ray for."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    custom: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One step of a pipeline.

    ``stage`` names the implementation in the stage registry; ``pool`` names the actor pool that
    runs it (stages sharing a pool share actors and a concurrency budget). ``timeout_s`` bounds
    one call; the Dispatcher's lease on the call is ``timeout_s`` plus ``lease_grace_s``.
    ``retry`` budgets the stage's own errors; ``loss_retry`` budgets tries lost to the
    infrastructure (actor death, expired lease), which are not the stage's fault. ``compensate``
    says the stage leaves side effects that a cancelled job must take back (the index).
    ``rate_source`` names the rate-limited source each try calls first (``"openalex"``,
    ``"host:example.org"``, one of ``AdapterSettings.source_rates``): the Dispatcher takes its
    token before it dispatches the job. Left ``None``, the built-in mapping applies
    (``runtime/sources.py``: ``metadata`` and ``pdf_fetch``).
    """

    stage: str
    pool: str = ""
    retry: RetryPolicy = DEFAULT_RETRY
    timeout_s: float = 300.0
    lease_grace_s: float = 30.0
    loss_retry: RetryPolicy = LOSS_RETRY
    compensate: bool = False
    rate_source: str | None = None

    @property
    def pool_name(self) -> str:
        """The pool that runs this stage (the stage's own name unless set)."""
        return self.pool or self.stage

    @property
    def lease_s(self) -> float:
        """How long a dispatched call may stay silent before it is presumed lost."""
        return self.timeout_s + self.lease_grace_s


@dataclass(frozen=True, slots=True)
class Pipeline:
    """An ordered list of stages; a job runs them in order, each at most once successfully."""

    name: str
    stages: tuple[StageSpec, ...]
    description: str = ""
    #: publish a ``mapping.events.v1`` event after this stage completes (None: never)
    mapping_after: str | None = None

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"pipeline {self.name!r} has no stages")
        names = [s.stage for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline {self.name!r} repeats a stage: {names}")
        if self.mapping_after is not None and self.mapping_after not in names:
            raise ValueError(f"mapping_after={self.mapping_after!r} is not a stage of {names}")

    def index_of(self, stage: str) -> int:
        """Position of ``stage`` in this pipeline."""
        for i, spec in enumerate(self.stages):
            if spec.stage == stage:
                return i
        raise KeyError(f"pipeline {self.name!r} has no stage {stage!r}")

    def next_after(self, stage: str) -> StageSpec | None:
        """The stage that follows ``stage``, or ``None`` when it was the last."""
        i = self.index_of(stage)
        return self.stages[i + 1] if i + 1 < len(self.stages) else None
