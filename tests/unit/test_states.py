from __future__ import annotations

import itertools

import pytest

from ingest_ray.errors import IllegalTransitionError
from ingest_ray.states import (
    DEDUPLICATING,
    TERMINAL,
    TRANSITIONS,
    JobStatus,
    TransitionReason,
    check_transition,
    default_reason,
    is_allowed,
)

S = JobStatus
LEGAL = {
    (S.QUEUED, S.PROCESSING),
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.FAILED),
    (S.QUEUED, S.CANCELLED),
    (S.PROCESSING, S.CANCELLED),
    (S.FAILED, S.QUEUED),
}


def test_transitions_table_is_exactly_the_documented_state_machine() -> None:
    assert set(TRANSITIONS) == LEGAL


@pytest.mark.parametrize(("source", "target"), sorted(LEGAL))
def test_check_transition_allows_every_legal_edge(source: JobStatus, target: JobStatus) -> None:
    check_transition(source, target)
    assert is_allowed(source, target, default_reason(source, target))


ILLEGAL = sorted(set(itertools.product(S, S)) - LEGAL)


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_check_transition_rejects_every_illegal_edge(source: JobStatus, target: JobStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        check_transition(source, target)


def test_failed_to_queued_only_by_retry() -> None:
    assert default_reason(S.FAILED, S.QUEUED) is TransitionReason.RETRY
    with pytest.raises(IllegalTransitionError, match="reason cancel"):
        check_transition(S.FAILED, S.QUEUED, TransitionReason.CANCEL)


def test_terminal_and_deduplicating_sets() -> None:
    assert {s for s in S if s.is_terminal} == TERMINAL == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert {S.QUEUED, S.PROCESSING, S.COMPLETED} == DEDUPLICATING
