"""Request models refuse server-owned fields; queries need aware datetimes (no services)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from serve_app.schemas import JobSummary, ListQuery, SubmitBatch, SubmitItem
from serve_app.submit import new_job


@pytest.mark.parametrize("field", ["status", "attempts", "tenant_id", "job_id", "doc_key"])
def test_submit_item_refuses_server_owned_fields(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        SubmitItem.model_validate({"source": {"kind": "text", "value": "x"}, field: "v"})


def test_submit_batch_bounds() -> None:
    item = {"source": {"kind": "doi", "value": "10.1/x"}}
    assert len(SubmitBatch.model_validate({"items": [item] * 100}).items) == 100
    for items in ([], [item] * 101):
        with pytest.raises(ValidationError):
            SubmitBatch.model_validate({"items": items})


def test_submit_item_to_request_and_job_match_admission_shape() -> None:
    item = SubmitItem.model_validate(
        {
            "source": {"kind": "doi", "value": "https://doi.org/10.1/ABC"},
            "priority": 2,
            "metadata": {"k": 1},
        }
    )
    request = item.to_request("tenant-1")
    job = new_job(request)
    assert request.tenant_id == "tenant-1" and request.doc_key == "doi:10.1/abc"
    assert job.pipeline == "two_phase" and job.priority == 2
    assert job.metadata == {
        "request_id": request.request_id,
        "source": {"kind": "doi", "value": "https://doi.org/10.1/ABC"},
        "request": {"k": 1},
    }
    text = SubmitItem.model_validate({"source": {"kind": "text", "value": "abc"}})
    assert new_job(text.to_request("t")).pipeline == "auto"
    assert "request" not in new_job(text.to_request("t")).metadata


def test_list_query_needs_aware_datetimes_and_clamps_before_epoch() -> None:
    with pytest.raises(ValidationError):
        ListQuery.model_validate({"created_after": "2024-01-01T00:00:00"})
    early = ListQuery.model_validate({"created_after": "1900-01-01T00:00:00Z", "limit": "5"})
    assert early.created_after == datetime(1970, 1, 1, tzinfo=UTC) and early.limit == 5
    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "not-a-ulid"}, {"status": "done"}):
        with pytest.raises(ValidationError):
            ListQuery.model_validate(bad)


def test_job_summary_has_exactly_the_contract_fields() -> None:
    assert set(JobSummary.model_fields) == {
        "job_id", "tenant_id", "doc_key", "pipeline", "status", "stage", "priority",
        "attempts", "created_at", "updated_at", "finished_at", "error", "title", "document",
    }  # fmt: skip
