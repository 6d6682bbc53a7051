"""MinerU 2.x/3.x's ``mineru-api`` (``mineru/cli/fast_api.py``, ``api_request.py``, 3.4.5).

* **tasks**: ``POST /tasks`` (multipart: ``files`` plus form options) answers 202 with a
  ``task_id``; ``GET /tasks/{id}`` reports ``pending`` / ``processing`` / ``completed`` /
  ``failed`` (with ``error``); ``GET /tasks/{id}/result`` returns
  ``{"backend", "version", "results": {stem: {"content_list": ...}}}``.
* **file_parse**: ``POST /file_parse`` with the same form parses synchronously and returns the
  same ``results`` shape (409 when the task failed).

``content_list`` arrives as a JSON *string* (the file MinerU wrote) or, from some servers, as a
list; both are accepted. Results are keyed by the upload's stem (we name uploads ``f000.pdf``,
``f001.pdf``, ... so the stems are ours). These versions have no cancel route and no per-file
status: a failed task fails all its files (permanent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from ingest_ray.parsing.content import normalize_content_list
from ingest_ray.parsing.errors import (
    MineruResultError,
    MineruTaskFailedError,
    MineruTimeoutError,
    ParseError,
)
from ingest_ray.parsing.mineru_http import MineruHttp, json_object
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import FileOutcome, Upload

_RUNNING = frozenset({"pending", "processing", "queued", "running"})


class LegacyApi:
    """``/tasks`` or ``/file_parse`` of one 2.x/3.x server."""

    def __init__(self, http: MineruHttp, settings: ParseSettings, *, sync: bool) -> None:
        self.http = http
        self.settings = settings
        self.sync = sync

    async def parse(self, uploads: Sequence[Upload]) -> list[FileOutcome]:
        """Parse the uploads in one request (or task); one outcome per upload."""
        files = [("files", (u.name, u.path.read_bytes(), "application/pdf")) for u in uploads]
        if self.sync:
            timeout = httpx.Timeout(self.settings.mineru_task_timeout_s, connect=10.0)
            response = await self.http.request(
                "POST", "/file_parse", data=self._form(len(uploads)), files=files, timeout=timeout
            )
            return _outcomes(json_object(response), uploads)
        submitted = json_object(
            await self.http.request("POST", "/tasks", data=self._form(len(uploads)), files=files)
        )
        task_id = submitted.get("task_id")
        if not isinstance(task_id, str) or not task_id or "/" in task_id:
            raise MineruResultError(f"MinerU did not return a usable task_id: {submitted}")
        await self._wait(task_id)
        result = await self.http.request("GET", f"/tasks/{task_id}/result", lost_is_retryable=True)
        return _outcomes(json_object(result), uploads)

    def _form(self, count: int) -> dict[str, Any]:
        settings = self.settings
        form: dict[str, Any] = {
            "backend": settings.mineru_backend,
            "parse_method": settings.mineru_parse_method,
            "lang_list": [settings.mineru_lang] * count,
            "return_content_list": "true",
            "return_md": "false",
            "return_middle_json": "false",
            "return_model_output": "false",
            "return_images": "false",
            "response_format_zip": "false",
            "formula_enable": "true",
            "table_enable": "true",
            "start_page_id": "0",
            "end_page_id": str(settings.max_pages - 1),
        }
        if settings.mineru_vlm_url is not None:
            form["backend"] = "vlm-http-client"
            form["server_url"] = str(settings.mineru_vlm_url)
        return form

    async def _wait(self, task_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.mineru_task_timeout_s
        while True:
            payload = json_object(
                await self.http.request("GET", f"/tasks/{task_id}", lost_is_retryable=True)
            )
            status = str(payload.get("status", "")).lower()
            if status == "completed":
                return
            if status == "failed":
                reason = payload.get("error") or payload.get("message") or "no reason given"
                raise MineruTaskFailedError(f"MinerU task {task_id} failed: {reason}")
            if status and status not in _RUNNING:
                raise MineruResultError(f"MinerU task {task_id} has unknown status {status!r}")
            if loop.time() + self.settings.poll_interval_s > deadline:
                raise MineruTimeoutError(
                    f"MinerU task {task_id} not done after "
                    f"{self.settings.mineru_task_timeout_s:g} s (last status {status!r})"
                )
            await asyncio.sleep(self.settings.poll_interval_s)


def _outcomes(payload: dict[str, Any], uploads: Sequence[Upload]) -> list[FileOutcome]:
    results = payload.get("results")
    if not isinstance(results, dict) or not results:
        raise MineruResultError("MinerU's answer has no results")
    outcomes: list[FileOutcome] = []
    for upload in uploads:
        stem = upload.name.rsplit(".", 1)[0]
        entry = results.get(stem)
        if entry is None and len(uploads) == 1 and len(results) == 1:
            entry = next(iter(results.values()))
        outcomes.append(_content(entry, stem))
    return outcomes


def _content(entry: Any, stem: str) -> FileOutcome:
    if not isinstance(entry, dict) or entry.get("content_list") is None:
        return MineruResultError(f"MinerU's answer has no content_list for {stem!r}")
    try:
        return normalize_content_list(entry["content_list"])
    except ParseError as exc:
        return exc
