"""How ``run_local`` follows its jobs: one batched read per round for the jobs it knows (the
``ingest-ray ingest`` process shares the cores with the pipeline it waits for)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.ledger.base import Job, NewJob
from ingest_ray.local_run import FOLLOW_MAX_S, FOLLOW_MIN_S, Tracked, _refresh, follow_pause
from ingest_ray.testing import InMemoryLedger


class CountingLedger(InMemoryLedger):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []

    def get(self, job_id: str, *, tenant_id: str | None = None) -> Job:
        self.calls.append(("get", job_id))
        return super().get(job_id, tenant_id=tenant_id)

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        self.calls.append(("get_many", tuple(job_ids)))
        return super().get_many(job_ids)


def _tracked(n: int) -> list[Tracked]:
    return [
        Tracked(IngestRequest(tenant_id="t1", source=DocumentSource(kind=SourceKind.DOI,
                                                                     value=f"10.1/{i}")))
        for i in range(n)
    ]  # fmt: skip


def test_known_jobs_are_read_in_one_batch_and_new_ones_by_their_document_key() -> None:
    ledger, tracked = CountingLedger(), _tracked(3)
    ids = [ledger.create(NewJob("t1", t.request.doc_key, "auto")).job_id for t in tracked[:2]]
    _refresh(ledger, tracked)
    assert [t.job.job_id if t.job else None for t in tracked] == [*ids, None]
    assert ledger.calls == [("get_many", ())]  # none known yet: both found by their key

    ledger.calls.clear()
    third = ledger.create(NewJob("t1", tracked[2].request.doc_key, "auto")).job_id
    _refresh(ledger, tracked)
    assert ledger.calls == [("get_many", tuple(ids))]  # no per-job read, no history
    assert tracked[2].job is not None and tracked[2].job.job_id == third


def test_the_pause_between_rounds_grows_with_the_jobs_left_so_reads_per_second_stay_bounded() -> (
    None
):
    assert follow_pause(0) == follow_pause(10) == FOLLOW_MIN_S  # a few jobs: followed closely
    assert follow_pause(500) == 1.0  # every job read once a second
    assert follow_pause(100_000) == FOLLOW_MAX_S  # never slower than this
    rates = [n / follow_pause(n) for n in (150, 500, 1000)]
    assert max(rates) <= 500.0 + 1e-9
