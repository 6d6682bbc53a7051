"""The HTTP commands (submit, jobs, watch, cancel) against a mock API, and the watch model."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from ingest_ray.commands import api as api_commands
from ingest_ray.commands.api import JobProgress, outcome_code, register
from ingest_ray.commands.api_client import JobApi
from ingest_ray.ledger.base import JobEvent
from ingest_ray.states import JobStatus
from tests.unit.cli.test_api_client import event, sse

NOW = datetime.now(UTC).isoformat()


def summary(job_id: str, status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "tenant_id": "t", "doc_key": f"doi:{job_id}", "pipeline": "auto",
            "status": status, "stage": None, "priority": 5, "attempts": 0, "created_at": NOW,
            "updated_at": NOW, "finished_at": None, "error": None, **extra}  # fmt: skip


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run the commands with a mock API answering through ``handler``."""
    monkeypatch.delenv("INGEST_RAY_API_KEY", raising=False)

    def run(handler: Callable[[httpx.Request], httpx.Response], *args: str) -> Any:
        transport = httpx.MockTransport(handler)
        monkeypatch.setattr(api_commands, "JobApi", functools.partial(JobApi, transport=transport))
        app = typer.Typer()
        register(app)
        return CliRunner().invoke(app, [*args], env={"COLUMNS": "200"})

    return run


def test_cli_submit_guesses_kinds_and_prints_job_ids(cli: Callable[..., Any]) -> None:
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        jobs = [{"job_id": f"J{i}", "doc_key": "k", "status": "queued", "created": i == 0}
                for i, _ in enumerate(sent[-1]["items"])]  # fmt: skip
        return httpx.Response(202, json={"jobs": jobs})

    result = cli(handler, "submit", "10.1/x", "https://x.org/a.pdf", "--priority", "7",
                 "--key", "irk_k", "--url", "http://api.test")  # fmt: skip
    assert result.exit_code == 0, result.output
    kinds = [(i["source"]["kind"], i["priority"]) for i in sent[0]["items"]]
    assert kinds == [("doi", 7), ("pdf_url", 7)]
    assert "J0" in result.output and "created" in result.output and "exists" in result.output


def test_cli_watch_exits_2_when_the_job_is_cancelled(cli: Callable[..., Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = sse(event(1, "queued", kind="created"), event(2, "processing", stage="metadata"),
                   event(3, "cancelled", from_status="processing"))  # fmt: skip
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    result = cli(handler, "watch", "J1", "--key", "irk_k")
    assert result.exit_code == 2, result.output
    assert "J1: cancelled" in result.output


def test_cli_jobs_lists_through_the_api_with_filters(cli: Callable[..., Any]) -> None:
    queries: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(request.url.params)
        return httpx.Response(200, json={"items": [summary("J1", "failed")], "next_cursor": None})

    result = cli(handler, "jobs", "--status", "failed", "--limit", "5", "--json", "--key", "k")
    assert result.exit_code == 0, result.output
    assert queries[0]["status"] == "failed" and queries[0]["limit"] == "5"
    assert json.loads(result.output)["items"][0]["job_id"] == "J1"


def test_cli_cancel_reports_a_refusal_as_one_line_and_exit_3(cli: Callable[..., Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "conflict", "message": "job J1 is already completed"}}
        return httpx.Response(409, json=body)

    result = cli(handler, "cancel", "J1", "--key", "k")
    assert result.exit_code == 3
    assert "already completed" in result.output
    assert "Traceback" not in result.output


def test_cli_retry_shows_the_new_status(cli: Callable[..., Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/jobs/J1/retry"
        return httpx.Response(200, json={"job": summary("J1", "queued"), "changed": True})

    result = cli(handler, "retry", "J1", "--key", "k")
    assert result.exit_code == 0
    assert "J1: queued" in result.output


def apply_all(*raw: dict[str, Any]) -> JobProgress:
    job = JobProgress("J1")
    for e in raw:
        job.apply(JobEvent.model_validate(e))
    return job


def test_job_progress_has_one_line_per_stage_with_retries() -> None:
    job = apply_all(
        event(1, "queued", kind="created"),
        event(2, "processing", stage="metadata", attempts=1),
        event(3, "processing", kind="stage", stage="chunk", attempts=1,
              data={"completed": "metadata", "duration_ms": 12}),
        event(4, "processing", kind="stage", stage="chunk", attempts=2,
              error={"type": "RetryableError", "message": "flaky"},
              data={"failed_attempt": 1, "retry_in_s": 0.5}),
    )  # fmt: skip
    lines = {name: (line.state, line.attempt) for name, line in job.stages.items()}
    assert lines == {"metadata": ("done", 1), "chunk": ("retrying", 2)}
    assert job.stages["chunk"].note == "flaky"


def test_job_progress_marks_the_failed_stage() -> None:
    job = apply_all(
        event(1, "processing", stage="embed", attempts=1),
        event(2, "failed", error={"type": "PermanentError", "message": "bad", "stage": "embed"},
              data={"failed_stage": "embed"}),
    )  # fmt: skip
    assert job.status is JobStatus.FAILED
    assert job.stages["embed"].state == "failed"


def test_outcome_code_prefers_failure_then_cancellation() -> None:
    c, f, x = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED
    assert [outcome_code([c, c]), outcome_code([c, x]), outcome_code([x, f, c])] == [0, 2, 1]
