"""The values the runtime passes around: work items, dispatches and stage call results.

Everything here is plain data that pickles cheaply across Ray calls (no ``slots``: a slotted
dataclass pickles through a generated ``__getstate__``, about twice as slow). Errors cross process
boundaries as :class:`StageFailure` values (exceptions with extra constructor arguments do not
always survive pickling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest_ray.errors import IngestError
from ingest_ray.events import DocumentSource
from ingest_ray.stages.base import StageInput, StageOutput


@dataclass
class WorkItem:
    """One job at one stage, as the Dispatcher holds it.

    ``attempt`` is the try number of the current stage and the fencing token of its ledger
    writes; ``errors`` and ``losses`` count the tries that ended in the stage's own error and in
    an infrastructure loss (actor death, expired lease): two budgets, spent separately.
    """

    job_id: str
    tenant_id: str
    doc_key: str
    pipeline: str
    priority: int
    source: DocumentSource
    stage_index: int = 0
    #: which try of the current stage runs (or is scheduled) next, 1-based
    attempt: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: clock time the item became ready (for aging and queue-time metrics)
    ready_at: float = 0.0
    #: True until the job's queued -> processing transition has been written
    needs_start: bool = True
    errors: int = 0
    losses: int = 0
    #: rate-limit tokens taken for the next try (set by admission right before dispatch)
    reserved: tuple[str, ...] = ()

    def stage_input(self, stage: str) -> StageInput:
        """What the stage sees."""
        return StageInput(
            job_id=self.job_id,
            tenant_id=self.tenant_id,
            doc_key=self.doc_key,
            pipeline=self.pipeline,
            stage=stage,
            attempt=self.attempt,
            source=self.source,
            metadata=self.metadata,
            outputs=self.outputs,
            reserved=self.reserved,
        )


@dataclass(frozen=True)
class StageFailure:
    """A stage error, flattened so it can travel between processes. ``lost`` marks a try that
    never answered (the actor died, the lease ran out): the infrastructure's fault, not the
    stage's, so it spends the loss budget rather than the retry policy's."""

    error_type: str
    message: str
    retryable: bool
    retry_after: float | None = None
    lost: bool = False

    @classmethod
    def from_error(cls, exc: BaseException) -> StageFailure:
        """Flatten any exception; unknown ones count as retryable (a bug may be transient,
        and the retry policy still bounds them)."""
        if isinstance(exc, IngestError):
            return cls(exc.error_type, exc.message, exc.retryable, exc.retry_after)
        return cls(type(exc).__name__, str(exc) or repr(exc), True)

    def as_error(self) -> IngestError:
        """Back to an exception for the retry policy."""
        error = IngestError(self.message, retry_after=self.retry_after)
        error.retryable = self.retryable
        return error


StageResult = StageOutput | StageFailure


@dataclass(frozen=True)
class Dispatch:
    """A batch of items sent to one pool for one stage."""

    dispatch_id: int
    pool: str
    stage: str
    items: tuple[WorkItem, ...]
    started_at: float
    lease_deadline: float
