"""A ``TaskBackend`` for MinerU's own ``/v1`` task router, and the loopback app that mounts it.

MinerU 4.x builds its ``/v1/tasks`` and ``/v1/file_parse`` routes with
``mineru.parser.task_api.build_task_router(factory)``: request parsing, validation (file count,
size, empty files, output formats), the task and result envelopes and their status codes are
MinerU's code. The router delegates storage and execution to a ``TaskBackend``; MinerU's own
(``ApiTaskBackend``) runs jobs through its ``JobStore``. :class:`PdfiumTaskBackend` runs each
file through MinerU's own ``mineru.parser.parse_async`` entry point instead - with only the
model call replaced by :mod:`.fake_model` - records per-file status and errors with MinerU's
models (``JobAsyncResponse``, ``JobFileResult``, ``ErrorDetail``), and ends a job
``completed``, ``partial``, ``failed`` or ``canceled`` as MinerU's ``_run_job`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from mineru.errors import MineruError
from mineru.parser import parse_async
from mineru.parser.api_server import (
    ApiServerError,
    CreateJobRequest,
    ErrorDetail,
    HealthResponse,
    JobAsyncResponse,
    JobFileResult,
    JobLinks,
    JobProgress,
    OutputFileRef,
    OutputFiles,
    _error_response,
    _raise_api_error,
    _validation_error_code,
    _validation_error_message,
    _validation_error_param,
)
from mineru.parser.task_api import TaskUpload, build_task_router
from mineru.version import __version__

_TERMINAL = {"completed", "partial", "failed", "canceled"}


@dataclass
class _Job:
    response: JobAsyncResponse
    paths: list[Path]
    page_ranges: list[str]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass
class TaskStore:
    """Jobs, uploaded bytes and outputs of one app (kept in ``app.state``)."""

    root: Path
    jobs: dict[str, _Job] = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, Path] = field(default_factory=dict)
    serial: itertools.count[int] = field(default_factory=itertools.count)
    parses: int = 0  # files handed to MinerU's parser


class PdfiumTaskBackend:
    """MinerU's ``TaskBackend`` protocol over :class:`TaskStore`; one per request."""

    def __init__(self, request: Request) -> None:
        self.store: TaskStore = request.app.state.task_store

    def release_uploads(self) -> None:
        """Nothing is pinned between requests here."""

    async def find_upload(self, sha256sum: str, filename: str) -> TaskUpload | None:
        """Bytes uploaded before under this hash (MinerU then skips reading the body)."""
        path = self.store.blobs.get(sha256sum)
        return None if path is None else TaskUpload(path, filename, path.stat().st_size, sha256sum)

    async def submit(
        self, body: CreateJobRequest, uploads: dict[int, TaskUpload]
    ) -> dict[str, Any]:
        """Keep the uploads, create the job record, start it; MinerU's job payload back."""
        job_id = f"job_{next(self.store.serial):024x}"
        paths = []
        for index, upload in sorted(uploads.items()):
            target = self.store.root / f"{upload.sha256sum}.bin"
            if not target.exists():
                shutil.copyfile(upload.path, target)
            self.store.blobs[upload.sha256sum] = target
            paths.append((target, upload.filename, body.files[index].page_range or ""))
        response = JobAsyncResponse(
            job_id=job_id, status="queued", created_at=_now(), tier=body.tier or "standard",
            output_formats=body.output_formats, access_level="anonymous",  # type: ignore[arg-type]
            progress=JobProgress(total=len(paths)),
            files=[JobFileResult(name=n, page_range=r, status="queued") for _, n, r in paths],
            links=JobLinks(self=f"/v1/tasks/{job_id}", cancel=f"/v1/tasks/{job_id}"),
        )  # fmt: skip
        job = _Job(response, [p for p, _, _ in paths], [r for *_, r in paths])
        self.store.jobs[job_id] = job
        job.task = asyncio.create_task(_run(self.store, job, body))
        return _dump(job)

    async def get(self, task_id: str) -> dict[str, Any]:
        """The job's payload, or MinerU's 404 envelope."""
        return _dump(self._job(task_id))

    async def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (409 when it already ended), as MinerU's JobStore."""
        job = self._job(task_id)
        if job.response.status in _TERMINAL:
            _raise_api_error(409, error_type="invalid_request_error",
                             code="job_already_terminal", message=f"Job is {job.response.status}")  # fmt: skip
        job.response.status = "canceled"
        if job.task is not None:
            job.task.cancel()
        return _dump(job)

    async def wait(self, task_id: str, timeout: float) -> dict[str, Any]:
        """Wait for the job to end, at most ``timeout`` seconds (the job keeps running)."""
        job = self._job(task_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.done.wait(), timeout)
        return _dump(job)

    async def read_output(self, file_id: str) -> bytes:
        """An output file's bytes."""
        try:
            return self.store.outputs[file_id]
        except KeyError:
            _raise_api_error(404, error_type="invalid_request_error", code="file_not_found",
                             message=f"File {file_id} not found")  # fmt: skip

    def _job(self, task_id: str) -> _Job:
        job = self.store.jobs.get(task_id)
        if job is None:
            _raise_api_error(404, error_type="invalid_request_error", code="job_not_found",
                             message=f"Job {task_id} not found")  # fmt: skip
        return job


async def _run(store: TaskStore, job: _Job, body: CreateJobRequest) -> None:
    response = job.response
    response.status, response.started_at = "running", _now()
    try:
        for index, path in enumerate(job.paths):
            file = response.files[index]
            file.status = "running"
            try:
                store.parses += 1
                result = await parse_async(
                    str(_with_suffix(path, file.name)), tier=response.tier,
                    ocr_mode=body.ocr_mode, page_range=job.page_ranges[index],
                )  # fmt: skip
                file.output_files = _outputs(store, result, file.name, response.output_formats)
                file.status = "completed"
                response.progress.completed += 1  # type: ignore[union-attr]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # what MinerU's _run_job records per file
                file.status = "failed"
                file.error = _error(exc)
                response.progress.failed += 1  # type: ignore[union-attr]
        failed, total = response.progress.failed, response.progress.total  # type: ignore[union-attr]
        response.status = "failed" if failed == total else "partial" if failed else "completed"
    except asyncio.CancelledError:
        response.status = "canceled"
    finally:
        response.finished_at = _now()
        job.done.set()


def _with_suffix(path: Path, name: str) -> Path:
    """MinerU picks the parser by suffix: a hard link with the upload's suffix."""
    target = path.with_name(f"{path.stem}{Path(name).suffix or '.pdf'}")
    if not target.exists():
        target.hardlink_to(path)
    return target


def _outputs(store: TaskStore, result: Any, name: str, formats: list[str]) -> OutputFiles:
    files = OutputFiles()
    if "middle_json" in formats:
        data = json.dumps(result.to_dict(), ensure_ascii=False).encode()
        files.middle_json = OutputFileRef(file_id=_keep(store, data), bytes=len(data))
    if "markdown" in formats:
        data = result.markdown().encode()
        files.markdown = OutputFileRef(file_id=_keep(store, data), bytes=len(data))
    return files


def _keep(store: TaskStore, data: bytes) -> str:
    file_id = f"file-{hashlib.sha256(data).hexdigest()[:24]}"
    store.outputs[file_id] = data
    return file_id


def _error(exc: Exception) -> ErrorDetail:
    if isinstance(exc, MineruError):
        return ErrorDetail(type=exc.type, code=exc.code, message=str(exc), param=exc.param)
    return ErrorDetail(type="engine_error", code="parse_failed", message=str(exc))


def _dump(job: _Job) -> dict[str, Any]:
    return job.response.model_dump(by_alias=True)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_app(root: Path | None = None) -> FastAPI:
    """MinerU's task router on a FastAPI app, with MinerU's error envelopes and a health route."""
    app = FastAPI(title="MinerU task router (pdfium model)")
    store = TaskStore(Path(root or tempfile.mkdtemp(prefix="mineru-tasks-")))
    store.root.mkdir(parents=True, exist_ok=True)
    app.state.task_store = store

    @app.exception_handler(ApiServerError)
    async def _api_error(request: Request, exc: ApiServerError) -> Any:
        return _error_response(exc.status_code, exc.error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        error = ErrorDetail(type="invalid_request_error", code=_validation_error_code(exc),
                            message=_validation_error_message(exc),
                            param=_validation_error_param(exc))  # fmt: skip
        return _error_response(400, error)

    @app.get("/v1/health", response_model=HealthResponse)
    async def _health() -> HealthResponse:
        return HealthResponse(version=__version__)

    app.include_router(build_task_router(PdfiumTaskBackend))
    return app
