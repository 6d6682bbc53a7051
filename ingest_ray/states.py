"""Job states and the one transition table. Nothing else in the code base assigns a status.

``queued -> processing -> completed | failed``; ``queued | processing -> cancelled``;
``failed -> queued`` only by an explicit retry or dead-letter replay. The current stage is a field
of the job, not a status.
"""

from __future__ import annotations

from enum import StrEnum

from ingest_ray.errors import IllegalTransitionError


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True when no further transition happens without an explicit retry."""
        return self in TERMINAL


class TransitionReason(StrEnum):
    """Why a transition happened; ``retry`` is the only way out of ``failed``."""

    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    RETRY = "retry"


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
)

#: Statuses whose job blocks a second job for the same (tenant, doc_key).
DEDUPLICATING: frozenset[JobStatus] = frozenset(
    {JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED}
)

#: (from, to) -> the reasons that may cause it.
TRANSITIONS: dict[tuple[JobStatus, JobStatus], frozenset[TransitionReason]] = {
    (JobStatus.QUEUED, JobStatus.PROCESSING): frozenset({TransitionReason.START}),
    (JobStatus.PROCESSING, JobStatus.COMPLETED): frozenset({TransitionReason.COMPLETE}),
    (JobStatus.PROCESSING, JobStatus.FAILED): frozenset({TransitionReason.FAIL}),
    (JobStatus.QUEUED, JobStatus.CANCELLED): frozenset({TransitionReason.CANCEL}),
    (JobStatus.PROCESSING, JobStatus.CANCELLED): frozenset({TransitionReason.CANCEL}),
    (JobStatus.FAILED, JobStatus.QUEUED): frozenset({TransitionReason.RETRY}),
}

_DEFAULT_REASON: dict[tuple[JobStatus, JobStatus], TransitionReason] = {
    edge: next(iter(reasons)) for edge, reasons in TRANSITIONS.items() if len(reasons) == 1
}


def default_reason(source: JobStatus, target: JobStatus) -> TransitionReason:
    """The reason implied by an edge, raising for an edge the table does not have."""
    check_transition(source, target)
    return _DEFAULT_REASON[(source, target)]


def is_allowed(
    source: JobStatus, target: JobStatus, reason: TransitionReason | None = None
) -> bool:
    """Whether the table allows ``source -> target`` (for ``reason``, when given)."""
    reasons = TRANSITIONS.get((source, target))
    if reasons is None:
        return False
    return reason is None or reason in reasons


def check_transition(
    source: JobStatus, target: JobStatus, reason: TransitionReason | None = None
) -> None:
    """Raise :class:`IllegalTransitionError` unless the table allows the move."""
    if not is_allowed(source, target, reason):
        why = f" (reason {reason.value})" if reason else ""
        raise IllegalTransitionError(f"illegal transition {source.value} -> {target.value}{why}")
