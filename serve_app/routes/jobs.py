"""``/jobs`` routes: submit, list, read, cancel, retry, and the tenant's ``/stats``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest_ray.auth import Principal, Scope
from ingest_ray.documents import find_jobs
from ingest_ray.events import IngestRequest
from ingest_ray.ledger.base import JobFilter, Ledger
from ingest_ray.states import JobStatus
from serve_app.auth import authorize, context
from serve_app.body import read_json, read_pdf_form
from serve_app.errors import RequestValidationError, UnsupportedMediaTypeError
from serve_app.routes import model_response
from serve_app.routes.tenants import admission_note
from serve_app.schemas import (
    ControlResponse,
    JobDetail,
    JobPage,
    JobSummary,
    ListQuery,
    Stats,
    SubmitBatch,
    SubmitItem,
    SubmitResponse,
    SubmittedJob,
    UploadForm,
)

THROUGHPUT_WINDOW = timedelta(minutes=5)
M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, where: str) -> M:
    """``data`` as ``model``, or a 422 naming what is wrong and where."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError.from_pydantic(exc, where) from exc


async def _requests_from_json(request: Request, principal: Principal) -> list[IngestRequest]:
    data = await read_json(request, context(request).api.max_body_bytes)
    if isinstance(data, dict) and "items" in data:
        items = validate(SubmitBatch, data, "body").items
    else:
        items = [validate(SubmitItem, data, "body")]
    try:
        return [item.to_request(principal.tenant_id) for item in items]
    except ValidationError as exc:  # e.g. a doc_key derived from the source is too long
        raise RequestValidationError.from_pydantic(exc, "body") from exc


async def _request_from_upload(request: Request, principal: Principal) -> IngestRequest:
    ctx = context(request)
    data, fields, name = await read_pdf_form(request, ctx.api.max_upload_bytes)
    form = validate(UploadForm, fields, "body")
    return await run_in_threadpool(
        ctx.submitter.pdf_request,
        principal.tenant_id,
        data,
        priority=form.priority,
        pipeline=form.pipeline,
        file_name=name,
    )


async def create_jobs(request: Request) -> Response:
    """``POST /jobs``: one item, ``{"items": [...]}``, or a multipart PDF upload."""
    principal = await authorize(request, Scope.JOBS_WRITE)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        requests = await _requests_from_json(request, principal)
    elif media == "multipart/form-data":
        requests = [await _request_from_upload(request, principal)]
    else:
        raise UnsupportedMediaTypeError("send application/json or multipart/form-data")
    submitted = await run_in_threadpool(context(request).submitter.submit, requests)
    body = SubmitResponse(
        jobs=[
            SubmittedJob(
                job_id=s.outcome.job_id,
                doc_key=s.request.doc_key,
                status=s.outcome.status,
                created=s.outcome.created,
            )
            for s in submitted
        ]
    )
    return model_response(body, 202 if any(j.created for j in body.jobs) else 200)


async def list_jobs(request: Request) -> Response:
    """``GET /jobs``: the tenant's jobs, newest first, filtered and paged."""
    principal = await authorize(request, Scope.JOBS_READ)
    query = validate(ListQuery, dict(request.query_params), "query")
    flt = JobFilter(
        tenant_id=principal.tenant_id,
        status=query.status,
        stage=query.stage,
        pipeline=query.pipeline,
        doc_key=query.doc_key,
        created_after=query.created_after,
        created_before=query.created_before,
    )
    ledger = context(request).ledger
    if query.q:
        page = await run_in_threadpool(
            find_jobs, ledger, flt, query.q, cursor=query.cursor, limit=query.limit
        )
    else:
        page = await run_in_threadpool(
            ledger.list_jobs, flt, cursor=query.cursor, limit=query.limit
        )
    items = [JobSummary.of(job) for job in page.items]
    return model_response(JobPage(items=items, next_cursor=page.next_cursor))


async def get_job(request: Request) -> Response:
    """``GET /jobs/{job_id}``: the full job (another tenant's job is not found), with why it
    waits when its tenant may not start it now or its next source has no token."""
    principal = await authorize(request, Scope.JOBS_READ)
    ledger = context(request).ledger
    job_id = request.path_params["job_id"]
    job = await run_in_threadpool(ledger.get, job_id, tenant_id=principal.tenant_id)
    note = await admission_note(context(request), job)
    return model_response(JobDetail.of(job).model_copy(update={"admission": note}))


async def cancel_job(request: Request) -> Response:
    """``POST /jobs/{job_id}/cancel``: idempotent; 409 once the job finished."""
    principal = await authorize(request, Scope.JOBS_CANCEL)
    control = context(request).control
    job_id = request.path_params["job_id"]
    result = await run_in_threadpool(control.cancel, job_id, tenant_id=principal.tenant_id)
    return model_response(ControlResponse(job=JobSummary.of(result.job), changed=result.changed))


async def retry_job(request: Request) -> Response:
    """``POST /jobs/{job_id}/retry``: queue a failed job again; 409 for other finished jobs."""
    principal = await authorize(request, Scope.JOBS_WRITE)
    control = context(request).control
    job_id = request.path_params["job_id"]
    result = await run_in_threadpool(control.retry, job_id, tenant_id=principal.tenant_id)
    return model_response(ControlResponse(job=JobSummary.of(result.job), changed=result.changed))


def _stats(ledger: Ledger, tenant_id: str) -> Stats:
    counts = ledger.counts(tenant_id=tenant_id)
    since = datetime.now(UTC) - THROUGHPUT_WINDOW
    # approximate by design: finishes within the window among the 500 newest completed jobs
    page = ledger.list_jobs(JobFilter(tenant_id=tenant_id, status=JobStatus.COMPLETED), limit=500)
    done = sum(1 for j in page.items if j.finished_at is not None and j.finished_at >= since)
    minutes = THROUGHPUT_WINDOW.total_seconds() / 60
    return Stats(
        counts={status.value: n for status, n in counts.items()},
        throughput_per_min=round(done / minutes, 3),
    )


async def stats(request: Request) -> Response:
    """``GET /stats``: the tenant's jobs per status and completions per minute (last 5 min)."""
    principal = await authorize(request, Scope.JOBS_READ)
    result = await run_in_threadpool(_stats, context(request).ledger, principal.tenant_id)
    return model_response(result)


ROUTES = [
    Route("/jobs", create_jobs, methods=["POST"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{job_id}/retry", retry_job, methods=["POST"]),
    Route("/stats", stats, methods=["GET"]),
]
