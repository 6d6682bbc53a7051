"""MinerU 4.x's ``/v1`` task API (``mineru/parser/task_api.py``, ``api_server.py``, 4.0.12).

* **submit**: ``POST /v1/tasks``, multipart with only ``files`` fields (up to 100, 200 MiB
  each; MinerU allows no other form field), options in the query string: ``tier``,
  ``ocr_mode``, ``output_formats=middle_json``. 202 with ``task_id``.
* **poll / wait**: ``GET /v1/tasks/{id}``; ``status`` is ``queued`` or ``running``, then one of
  ``completed`` / ``partial`` / ``failed`` / ``canceled``; ``files[i]`` (in upload order) has
  its own ``status`` and ``error`` (``{"type", "code", "message"}``).
* **result**: ``GET /v1/tasks/{id}/result``: 200 with ``files[i].content.middle_json`` for the
  completed files (``partial`` too), 202 while running, 409 once ``failed`` or ``canceled``.
* **cancel**: ``DELETE /v1/tasks/{id}`` (409 when already terminal).

Statuses map to ingest_ray errors per file: a completed file gives its content list; a failed
file raises :class:`MineruTaskFailedError` (permanent) unless MinerU says its engine died or it
is shutting down (retryable); files of a ``canceled`` task, or that never ran, are
:class:`MineruTaskCanceledError` (retryable). A task that outlives ``mineru_task_timeout_s`` is
cancelled on the server and raises :class:`MineruTimeoutError` (retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from ingest_ray.errors import IngestError
from ingest_ray.parsing.content import ContentItem
from ingest_ray.parsing.errors import (
    MineruResultError,
    MineruTaskCanceledError,
    MineruTaskFailedError,
    MineruTimeoutError,
    MineruUnavailableError,
    ParseError,
)
from ingest_ray.parsing.middle import content_list_from_middle
from ingest_ray.parsing.mineru_http import MineruHttp, json_object
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import FileOutcome, Upload

TERMINAL = frozenset({"completed", "partial", "failed", "canceled"})
RUNNING = frozenset({"queued", "running"})
#: per-file error codes and types (``ErrorDetail``, ``mineru/errors.py``) that say "the server
#: or the moment", not "the document"
_SERVER_CODES = frozenset({"engine_dead", "server_shutting_down", "internal_error"})
_SERVER_TYPES = frozenset({"api_error", "internal_error", "timeout_error", "rate_limit_error"})


class V1Api:
    """The ``/v1`` task API of one server."""

    def __init__(self, http: MineruHttp, settings: ParseSettings) -> None:
        self.http = http
        self.settings = settings

    async def parse(self, uploads: Sequence[Upload]) -> list[FileOutcome]:
        """Submit one task with all ``uploads``, wait for it, and read its result per file."""
        task_id = await self.submit(uploads)
        try:
            job = await self.wait(task_id)
        except BaseException:
            await self._cancel_quietly(task_id)
            raise
        if len(job.get("files") or []) != len(uploads):
            raise MineruResultError(f"MinerU task {task_id} lists another number of files")
        if job["status"] in ("failed", "canceled"):
            return [_file_error(task_id, job["status"], f) for f in job["files"]]
        result = json_object(
            await self.http.request("GET", f"/v1/tasks/{task_id}/result", lost_is_retryable=True)
        )
        files = result.get("files")
        if not isinstance(files, list) or len(files) != len(uploads):
            raise MineruResultError(f"MinerU's result of task {task_id} has no file list")
        return [_outcome(task_id, result["status"], f) for f in files]

    async def submit(self, uploads: Sequence[Upload]) -> str:
        """``POST /v1/tasks``; the task id."""
        files = [("files", (u.name, u.path.read_bytes(), "application/pdf")) for u in uploads]
        payload = json_object(
            await self.http.request("POST", "/v1/tasks", params=self._options(), files=files)
        )
        task_id = payload.get("task_id")
        if not isinstance(task_id, str) or not task_id or "/" in task_id:
            raise MineruResultError(f"MinerU did not return a usable task_id: {payload}")
        return task_id

    async def status(self, task_id: str) -> dict[str, Any]:
        """``GET /v1/tasks/{id}``."""
        payload = json_object(
            await self.http.request("GET", f"/v1/tasks/{task_id}", lost_is_retryable=True)
        )
        status = payload.get("status")
        if status not in TERMINAL and status not in RUNNING:
            raise MineruResultError(f"MinerU task {task_id} has unknown status {status!r}")
        return payload

    async def wait(self, task_id: str) -> dict[str, Any]:
        """Poll until the task is terminal; :class:`MineruTimeoutError` after the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.mineru_task_timeout_s
        while True:
            job = await self.status(task_id)
            if job["status"] in TERMINAL:
                return job
            if loop.time() + self.settings.poll_interval_s > deadline:
                raise MineruTimeoutError(
                    f"MinerU task {task_id} not done after "
                    f"{self.settings.mineru_task_timeout_s:g} s (last status {job['status']!r})"
                )
            await asyncio.sleep(self.settings.poll_interval_s)

    async def cancel(self, task_id: str) -> None:
        """``DELETE /v1/tasks/{id}``; a task that already ended (409) is left as it is."""
        with contextlib.suppress(IngestError):
            await self.http.request("DELETE", f"/v1/tasks/{task_id}")

    async def _cancel_quietly(self, task_id: str) -> None:
        # shielded: runs even when the caller is being cancelled (a stage timeout)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(self.cancel(task_id)), timeout=5.0)

    def _options(self) -> list[tuple[str, str]]:
        options = [
            ("ocr_mode", self.settings.mineru_parse_method),
            ("output_formats", "middle_json"),
        ]
        if self.settings.mineru_tier is not None:
            options.append(("tier", self.settings.mineru_tier))
        return options


def _outcome(task_id: str, job_status: str, file: dict[str, Any]) -> FileOutcome:
    if file.get("status") != "completed":
        return _file_error(task_id, job_status, file)
    middle = (file.get("content") or {}).get("middle_json")
    if middle is None:
        return MineruResultError(f"MinerU task {task_id}: no middle_json for {file.get('name')}")
    try:
        items: list[ContentItem] = content_list_from_middle(middle)
    except ParseError as exc:
        return exc
    return items


def _file_error(task_id: str, job_status: str, file: dict[str, Any]) -> ParseError:
    error = file.get("error") or {}
    name = file.get("name") or "?"
    if not error:
        return MineruTaskCanceledError(
            f"MinerU task {task_id} ended {job_status!r} before {name} was parsed"
        )
    message = f"MinerU task {task_id} failed {name}: {error.get('message') or error}"
    if error.get("code") in _SERVER_CODES or error.get("type") in _SERVER_TYPES:
        return MineruUnavailableError(message)
    return MineruTaskFailedError(message)
