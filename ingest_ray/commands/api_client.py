"""A client of the HTTP job API (``serve_app``): calls, SSE parsing, following a job's events.

Used by the ``ingest-ray`` HTTP commands (``commands/api.py``) and usable from any script. The
event stream is parsed here (the WHATWG event-stream rules) and resumed with ``Last-Event-ID``
when it drops, so a follower sees every event of a job exactly once, in order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest_ray.errors import PermanentError, RetryableError
from ingest_ray.ledger.base import Job, JobEvent
from ingest_ray.states import JobStatus


class ApiClientSettings(BaseSettings):
    """Where the job API is and how to authenticate (``INGEST_RAY_API_URL``/``_API_KEY``)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_RAY_", extra="ignore", frozen=True)

    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    api_timeout_s: float = 30.0
    #: consecutive failed reconnects before ``watch`` gives up on a stream
    api_watch_reconnects: int = 20


class ApiError(PermanentError):
    """The API refused a call (4xx); ``code`` is the API's snake_case error code."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ApiUnavailableError(RetryableError):
    """The API could not be reached, or answered 429/5xx."""


# --- server-sent events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One server-sent event."""

    event: str
    data: str
    id: str | None = None


@dataclass
class SseDecoder:
    """Line-by-line SSE parser (the WHATWG event-stream rules); comments are heartbeats."""

    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None

    def feed(self, line: str) -> SseMessage | None:
        """Take one line (without its end of line); return an event when a blank line ends one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SseMessage | None:
        data, event, self._data, self._event = self._data, self._event, [], ""
        if not data:
            return None
        return SseMessage(event=event or "message", data="\n".join(data), id=self._id)


# --- the HTTP client --------------------------------------------------------------------------


class JobApi:
    """A small synchronous client of the job API (one connection pool; close it)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(cls, cfg: ApiClientSettings) -> JobApi:
        """A client for the configured URL and key."""
        key = cfg.api_key.get_secret_value() if cfg.api_key else None
        return cls(cfg.api_url, key, timeout=cfg.api_timeout_s)

    def __enter__(self) -> JobApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ApiUnavailableError(f"{method} {path}: {exc!r}") from exc
        _raise_for_status(response)
        return response.json()

    def submit(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``POST /jobs`` with up to 100 items; one entry per item (job_id, created, ...)."""
        reply = self._call("POST", "/jobs", json={"items": list(items)})
        return list(reply["jobs"])

    def upload(self, path: Path, *, priority: int, pipeline: str | None) -> list[dict[str, Any]]:
        """``POST /jobs`` with a PDF file as multipart form data."""
        form = {"priority": str(priority), **({"pipeline": pipeline} if pipeline else {})}
        with path.open("rb") as fh:
            files = {"file": (path.name, fh, "application/pdf")}
            reply = self._call("POST", "/jobs", data=form, files=files)
        return list(reply["jobs"])

    def list_jobs(self, **filters: object) -> tuple[list[Job], str | None]:
        """``GET /jobs``: one page of the tenant's jobs and the next cursor."""
        items, cursor = self.list_summaries(**filters)
        return [Job.model_validate(i) for i in items], cursor

    def list_summaries(self, **filters: object) -> tuple[list[dict[str, Any]], str | None]:
        """``GET /jobs`` as the API answers it (with each job's ``document`` name)."""
        params = {k: str(v) for k, v in filters.items() if v is not None}
        reply = self._call("GET", "/jobs", params=params)
        return list(reply["items"]), reply.get("next_cursor")

    def get_job(self, job_id: str) -> Job:
        """``GET /jobs/{id}``: the job with its history."""
        return self.get_job_detail(job_id)[0]

    def get_job_detail(self, job_id: str) -> tuple[Job, str | None]:
        """``GET /jobs/{id}``: the job, and why it is waiting when its tenant may not start
        it now or its source has no token (``admission.reason``)."""
        reply = self._call("GET", f"/jobs/{job_id}")
        admission = reply.get("admission") or {}
        return Job.model_validate(reply), admission.get("reason")

    def control(self, job_id: str, action: str) -> tuple[Job, bool]:
        """``POST /jobs/{id}/cancel`` or ``/retry``: the job after the call and whether it moved."""
        reply = self._call("POST", f"/jobs/{job_id}/{action}")
        return Job.model_validate(reply["job"]), bool(reply["changed"])

    def stats(self) -> dict[str, Any]:
        """``GET /stats``: counts per status and throughput."""
        return dict(self._call("GET", "/stats"))

    def events(self, job_id: str, *, after: int = 0) -> Iterator[JobEvent]:
        """``GET /jobs/{id}/events`` as job events, resuming after seq ``after``. A ``gap``
        (events trimmed from the capped stream) yields the job's whole history, so callers
        drop the seqs they already saw (:func:`follow_job` does)."""
        headers = {"Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = str(after)
        path = f"/jobs/{job_id}/events"
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_status(response)
                decoder = SseDecoder()
                for line in response.iter_lines():
                    message = decoder.feed(line)
                    if message is None or message.event == "message":
                        continue
                    if message.event == "gap":  # trimmed events: the job's whole history
                        history = json.loads(message.data)["job"]["history"]
                        yield from (JobEvent.model_validate(e) for e in history)
                    else:
                        yield JobEvent.model_validate_json(message.data)
        except httpx.TransportError as exc:
            raise ApiUnavailableError(f"GET {path}: {exc!r}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json().get("error", {})
    except (ValueError, AttributeError):
        body = {}
    code = str(body.get("code", "http_error"))
    message = f"{response.status_code} {code}: {body.get('message', response.reason_phrase)}"
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = response.headers.get("Retry-After")
        raise ApiUnavailableError(message, retry_after=float(retry_after) if retry_after else None)
    raise ApiError(message, status=response.status_code, code=code)


# --- following a job --------------------------------------------------------------------------


def follow_job(
    api: JobApi,
    job_id: str,
    on_event: Callable[[JobEvent], None],
    *,
    reconnects: int = 20,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Feed every event of ``job_id`` to ``on_event`` once, in order, until the job ends.

    A dropped stream is resumed after the last seq seen (``Last-Event-ID``), with a growing pause;
    ``reconnects`` consecutive failures raise :class:`ApiUnavailableError`.
    """
    last, failures = 0, 0
    while True:
        try:
            for event in api.events(job_id, after=last):
                if event.seq <= last:
                    continue
                last, failures = event.seq, 0
                on_event(event)
                if event.kind == "transition" and event.to_status.is_terminal:
                    return event.to_status
        except ApiUnavailableError as exc:
            if failures >= reconnects:
                raise
            pause = exc.retry_after or min(0.5 * 2**failures, 10.0)
        else:
            if failures >= reconnects:
                raise ApiUnavailableError(f"the event stream of {job_id} keeps ending early")
            pause = min(0.5 * 2**failures, 10.0)
        failures += 1
        sleep(pause)
