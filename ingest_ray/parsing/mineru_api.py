"""A client for MinerU's own HTTP API (``mineru-api``, MinerU 2.x/3.x).

Two ways in, both documented by MinerU (``mineru/cli/fast_api.py``, ``api_client.py``):

* **tasks** (default): ``POST /tasks`` (multipart: ``files`` plus form options) answers 202 with
  a ``task_id``; ``GET /tasks/{id}`` reports ``pending`` / ``processing`` / ``completed`` /
  ``failed`` (with ``error``); ``GET /tasks/{id}/result`` returns
  ``{"backend", "version", "results": {stem: {"content_list": ...}}}``. We poll until a
  deadline (``mineru_task_timeout_s``).
* **file_parse**: ``POST /file_parse`` with the same form parses synchronously and returns the
  same ``results`` shape.

``content_list`` arrives as a JSON *string* (the file MinerU wrote) or, from some servers, as a
list; both are accepted. Task URLs are built from our configured base URL, never taken from the
server's answer. Busy (429/503), failing (5xx) or unreachable servers raise retryable errors;
4xx answers and failed tasks are permanent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from ingest_ray.parsing.content import ContentItem, normalize_content_list
from ingest_ray.parsing.errors import (
    MineruRequestError,
    MineruResultError,
    MineruTaskFailedError,
    MineruTimeoutError,
    MineruUnavailableError,
)
from ingest_ray.parsing.settings import ParseSettings

_RUNNING = frozenset({"pending", "processing", "queued", "running"})


class MineruClient:
    """Talks to one ``mineru-api`` server; construct once per actor, ``aclose`` when done."""

    def __init__(self, settings: ParseSettings, *, client: httpx.AsyncClient | None = None):
        if settings.mineru_url is None:
            raise ValueError("MineruClient needs ParseSettings.mineru_url")
        self._settings = settings
        self._base = str(settings.mineru_url).rstrip("/")
        self._own_client = client is None
        # MinerU is an internal service: reached directly, no proxy from the environment
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.mineru_request_timeout_s, connect=10.0),
            trust_env=False,
        )

    async def health(self) -> dict[str, Any]:
        """``GET /health`` (``status`` is ``healthy`` in 3.x, ``ok`` in 2.x)."""
        payload = _json(await self._request("GET", "/health"))
        if payload.get("status") not in ("healthy", "ok"):
            raise MineruUnavailableError(f"MinerU at {self._base} is not healthy: {payload}")
        return payload

    async def parse(self, pdf: Path, *, upload_name: str | None = None) -> list[ContentItem]:
        """Parse ``pdf`` and return MinerU's content list for it."""
        name = upload_name or (pdf.name if pdf.suffix.lower() == ".pdf" else f"{pdf.name}.pdf")
        files = {"files": (name, pdf.read_bytes(), "application/pdf")}
        stem = name.rsplit(".", 1)[0]
        if self._settings.mineru_api_style == "file_parse":
            timeout = httpx.Timeout(self._settings.mineru_task_timeout_s, connect=10.0)
            response = await self._request(
                "POST", "/file_parse", data=self._form(), files=files, timeout=timeout
            )
            return _content_list(_json(response), stem)
        task_id = await self._submit(files)
        await self._wait(task_id)
        result = await self._request("GET", f"/tasks/{task_id}/result", lost_is_retryable=True)
        return _content_list(_json(result), stem)

    async def aclose(self) -> None:
        """Close the HTTP client if we made it."""
        if self._own_client:
            await self._client.aclose()

    def _form(self) -> dict[str, Any]:
        settings = self._settings
        return {
            "backend": settings.mineru_backend,
            "parse_method": settings.mineru_parse_method,
            "lang_list": [settings.mineru_lang],
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

    async def _submit(self, files: dict[str, Any]) -> str:
        payload = _json(await self._request("POST", "/tasks", data=self._form(), files=files))
        task_id = payload.get("task_id")
        if not isinstance(task_id, str) or not task_id or "/" in task_id:
            raise MineruResultError(f"MinerU did not return a usable task_id: {payload}")
        return task_id

    async def _wait(self, task_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.mineru_task_timeout_s
        while True:
            payload = _json(await self._request("GET", f"/tasks/{task_id}", lost_is_retryable=True))
            status = str(payload.get("status", "")).lower()
            if status == "completed":
                return
            if status == "failed":
                reason = payload.get("error") or payload.get("message") or "no reason given"
                raise MineruTaskFailedError(f"MinerU task {task_id} failed: {reason}")
            if status and status not in _RUNNING:
                raise MineruResultError(f"MinerU task {task_id} has unknown status {status!r}")
            if loop.time() + self._settings.poll_interval_s > deadline:
                raise MineruTimeoutError(
                    f"MinerU task {task_id} not done after "
                    f"{self._settings.mineru_task_timeout_s:g} s (last status {status!r})"
                )
            await asyncio.sleep(self._settings.poll_interval_s)

    async def _request(
        self, method: str, path: str, *, lost_is_retryable: bool = False, **kwargs: Any
    ) -> httpx.Response:
        url = f"{self._base}{path}"
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise MineruUnavailableError(f"MinerU timed out on {method} {path}: {exc}") from exc
        except httpx.TransportError as exc:
            raise MineruUnavailableError(f"MinerU unreachable on {method} {path}: {exc}") from exc
        status = response.status_code
        if status < 400:
            return response
        detail = _detail(response)
        if status == 429 or status >= 500 or (status == 404 and lost_is_retryable):
            raise MineruUnavailableError(
                f"MinerU answered {status} to {method} {path}: {detail}",
                retry_after=_retry_after(response),
            )
        raise MineruRequestError(f"MinerU refused {method} {path} ({status}): {detail}")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise MineruResultError(f"MinerU answered non-JSON ({response.status_code})") from exc
    if not isinstance(payload, dict):
        raise MineruResultError(f"MinerU answered a JSON {type(payload).__name__}, not an object")
    return payload


def _content_list(payload: dict[str, Any], stem: str) -> list[ContentItem]:
    results = payload.get("results")
    if not isinstance(results, dict) or not results:
        raise MineruResultError("MinerU's answer has no results")
    entry = results.get(stem)
    if entry is None and len(results) == 1:
        entry = next(iter(results.values()))
    if not isinstance(entry, dict) or entry.get("content_list") is None:
        raise MineruResultError(f"MinerU's answer has no content_list for {stem!r}")
    return normalize_content_list(entry["content_list"])


def _detail(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(payload, dict):
        for key in ("detail", "error", "message"):
            if isinstance(payload.get(key), str):
                return str(payload[key])[:500]
    return str(payload)[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
