"""A stand-in MinerU server on loopback, for what MinerU's own code cannot be made to do: fail on
cue (busy, 5xx, failed or cancelled tasks, failed files, malformed bodies, going down and coming
back) and take a fixed time per page (the benchmark's "GPU", :mod:`.mineru_gpu`).

It speaks both generations by their documented shapes. ``generation="legacy"``: MinerU 2.x/3.x
``mineru/cli/fast_api.py`` (multipart ``files`` + form options in,
``{"backend", "version", "results": {stem: {"content_list": "<JSON string>"}}}`` out; the tasks
API walks ``pending`` -> ``processing`` -> ``completed`` or ``failed``). ``generation="v1"``:
MinerU 4.x ``mineru/parser/task_api.py`` (``POST /v1/tasks`` with only files, options in the
query; per-file status; ``partial``; ``DELETE`` cancels; ``{"error": {...}}`` envelopes; results
as middle JSON). The contract tests run against MinerU's real router instead
(``tests/integration/mineru``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.unit.parsing.mineru_gpu import Gpu, Job, middle_json, page_count

CONTENT_LIST = [
    {"type": "text", "text": "A Study of Things", "text_level": 1, "page_idx": 0},
    {"type": "text", "text": "We studied things. ", "page_idx": 0, "bbox": [62, 480, 946, 904]},
    {
        "type": "table",
        "img_path": "images/t.jpg",
        "table_caption": ["Table 1"],
        "table_footnote": [],
        "table_body": "<table><tr><td>1</td></tr></table>",
        "page_idx": 0,
    },
]
_TERMINAL = {"completed", "partial", "failed", "canceled"}


@dataclass
class FakeMineru:
    """Behaviour switches and a record of what the server received."""

    generation: Literal["legacy", "v1"] = "legacy"
    openapi: bool = True  # serve /openapi.json (MinerU 4.x can turn it off)
    fail_task: bool = False  # the task ends "failed" (v1: every file with fail_code)
    cancel_task: bool = False  # v1: the task ends "canceled" (a server shutting down)
    fail_files: frozenset[str] = frozenset()  # v1: these uploads fail, the others complete
    fail_code: str = "parse_failed"
    busy: bool = False  # every parse request gets 503 + Retry-After
    down: bool = False  # every request, health included, gets 503
    malformed: bool = False  # results are not JSON
    reject_upload: bool = False  # 400, as MinerU answers a file it cannot load
    polls_before_done: int = 2
    content_list_as_string: bool = True
    gpu: Gpu | None = None  # timed tasks instead of poll-counted ones
    requests: list[tuple[str, str]] = field(default_factory=list)
    forms: list[dict[str, list[str]]] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    most_open: int = 0  # v1: most tasks not yet ended at any submission (requests in flight)

    def results(self, stems: list[str]) -> dict[str, Any]:
        content = json.dumps(CONTENT_LIST) if self.content_list_as_string else CONTENT_LIST
        return {
            "backend": "pipeline",
            "version": "2.7.0",
            "results": {stem: {"content_list": content} for stem in stems},
        }


class _Handler(BaseHTTPRequestHandler):
    state: FakeMineru  # set on a per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        self.state.requests.append((method, path))
        if self.state.down:
            self._send(503, _envelope("engine_error", "engine_dead", "engine is down"))
            return
        if method == "GET" and path == "/openapi.json" and self.state.openapi:
            self._send(200, {"openapi": "3.1.0", "paths": {key: {} for key in _paths(self.state)}})
            return
        handler = _v1 if self.state.generation == "v1" else _legacy
        if not handler(self, method, path):
            self._send(404, {"detail": "Not Found"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def multipart(self) -> tuple[dict[str, list[str]], list[tuple[str, bytes]]]:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        form: dict[str, list[str]] = {}
        files = []
        for part in message.iter_parts():
            name = str(part.get_param("name", header="content-disposition"))
            payload = part.get_payload(decode=True)
            if part.get_filename() and name == "files":
                files.append((part.get_filename(), payload))
            elif not part.get_filename():
                form.setdefault(name, []).append(payload.decode())
        return form, files


def _paths(state: FakeMineru) -> list[str]:
    if state.generation == "v1":
        return ["/v1/health", "/v1/tasks", "/v1/tasks/{task_id}", "/v1/file_parse"]
    return ["/health", "/tasks", "/tasks/{task_id}", "/file_parse"]


# --- MinerU 2.x/3.x -------------------------------------------------------------------------


def _legacy(h: _Handler, method: str, path: str) -> bool:
    state = h.state
    if method == "GET" and path == "/health":
        h._send(200, HEALTH)
    elif method == "GET" and path.startswith("/tasks/"):
        _legacy_task(h, path.strip("/").split("/"))
    elif method == "POST" and path in ("/tasks", "/file_parse"):
        form, files = h.multipart()
        if state.busy:
            h._send(503, {"detail": "Server is at maximum capacity: 3."}, {"Retry-After": "7"})
            return True
        state.forms.append(form)
        if state.reject_upload or not files or form.get("return_content_list") != ["true"]:
            h._send(400, {"error": "Failed to load file: Unknown file suffix: bin"})
            return True
        state.uploads.extend(files)
        stems = [name.rsplit(".", 1)[0] for name, _ in files]
        if path == "/file_parse":
            h._send(409 if state.fail_task else 200, state.results(stems))
            return True
        task_id = str(uuid.uuid4())
        state.tasks[task_id] = task = {
            "task_id": task_id, "status": "pending", "backend": form["backend"][0],
            "file_names": stems, "created_at": "2025-01-01T00:00:00Z", "polls": 0,
            "status_url": f"{state.url}/tasks/{task_id}",
            "result_url": f"{state.url}/tasks/{task_id}/result",
        }  # fmt: skip
        h._send(202, {**_public(task), "message": "Task submitted successfully"})
    else:
        return False
    return True


def _legacy_task(h: _Handler, parts: list[str]) -> None:
    state = h.state
    task = state.tasks.get(parts[1]) if len(parts) >= 2 else None
    if task is None:
        h._send(404, {"detail": "Task not found"})
    elif len(parts) == 2:
        h._send(200, _advance_legacy(state, task))
    elif task["status"] != "completed":
        h._send(409, {**_public(task), "message": "Task result is not ready"})
    elif state.malformed:
        h._send(200, b"<html>gateway</html>")
    else:
        h._send(200, state.results(task["file_names"]))


def _advance_legacy(state: FakeMineru, task: dict[str, Any]) -> dict[str, Any]:
    """One status poll: pending -> processing -> completed/failed after enough polls."""
    task["polls"] += 1
    if task["polls"] > state.polls_before_done:
        task["status"] = "failed" if state.fail_task else "completed"
        if state.fail_task:
            task["error"] = "Failed to process file: CUDA out of memory"
    elif task["polls"] > 1:
        task["status"] = "processing"
    return _public(task)


# --- MinerU 4.x /v1 -------------------------------------------------------------------------


def _v1(h: _Handler, method: str, path: str) -> bool:
    parts = path.strip("/").split("/")
    if method == "GET" and path == "/v1/health":
        h._send(200, {"status": "ok", "version": "4.0.12", "features": {}})
    elif method == "POST" and path == "/v1/tasks":
        _v1_submit(h)
    elif len(parts) >= 3 and parts[:2] == ["v1", "tasks"]:
        task = h.state.tasks.get(parts[2])
        if task is None:
            h._send(404, _envelope("invalid_request_error", "job_not_found", "Job not found"))
        elif method == "DELETE":
            _v1_cancel(h, task)
        elif method == "GET" and len(parts) == 3:
            h._send(200, _v1_payload(h.state, task, advance=True))
        elif method == "GET" and parts[3:] == ["result"]:
            _v1_result(h, task)
        else:
            return False
    else:
        return False
    return True


def _v1_submit(h: _Handler) -> None:
    state = h.state
    form, files = h.multipart()
    if state.busy:
        h._send(503, _envelope("engine_error", "busy", "Server is busy"), {"Retry-After": "7"})
        return
    query = parse_qs(urlsplit(h.path).query)
    if state.reject_upload or form or not files:
        h._send(400, _envelope("invalid_request_error", "invalid_request", "Supply files"))
        return
    task_id = "job_" + uuid.uuid4().hex[:24]
    with state.lock:
        still_open = sum(t["status"] not in _TERMINAL for t in state.tasks.values())
        state.most_open = max(state.most_open, still_open + 1)
        state.queries.append(query)
        state.uploads.extend(files)
        pages = [page_count(data) for _, data in files]
        task = {
            "id": task_id, "status": "queued", "polls": 0, "query": query,
            "files": [{"name": n, "status": "queued", "pages": p}
                      for (n, _), p in zip(files, pages, strict=True)],
        }  # fmt: skip
        state.tasks[task_id] = task
    if state.gpu is not None:
        task["job"] = job = Job(pages)
        state.gpu.submit(job)
    h._send(202, _v1_payload(state, task, advance=False))


def _v1_cancel(h: _Handler, task: dict[str, Any]) -> None:
    if task["status"] in _TERMINAL:
        h._send(409, _envelope("invalid_request_error", "job_already_terminal", "terminal"))
        return
    task["status"] = "canceled"
    if "job" in task:
        task["job"].status = "canceled"
    h._send(200, _v1_payload(h.state, task, advance=False))


def _v1_result(h: _Handler, task: dict[str, Any]) -> None:
    payload = _v1_payload(h.state, task, advance=False)
    if task["status"] not in _TERMINAL:
        h._send(202, payload)
    elif task["status"] in ("failed", "canceled"):
        h._send(409, payload)
    elif h.state.malformed:
        h._send(200, b"{not json")
    else:
        for file, public in zip(task["files"], payload["files"], strict=True):
            done = file["status"] == "completed"
            public["content"] = (
                {"middle_json": middle_json(file["name"], file["pages"])} if done else {}
            )
        h._send(200, payload)


def _v1_payload(state: FakeMineru, task: dict[str, Any], *, advance: bool) -> dict[str, Any]:
    if advance and task["status"] not in _TERMINAL:
        _advance_v1(state, task)
    base = f"/v1/tasks/{task['id']}"
    files = [
        {k: v for k, v in f.items() if k != "pages"} | {"page_range": "", "file_id": None}
        for f in task["files"]
    ]
    return {
        "task_id": task["id"], "status": task["status"], "created_at": "2026-01-01T00:00:00Z",
        "tier": "standard", "output_formats": ["middle_json"], "access_level": "anonymous",
        "files": files, "links": {"self": base, "cancel": base},
        "status_url": base, "result_url": f"{base}/result",
    }  # fmt: skip


def _advance_v1(state: FakeMineru, task: dict[str, Any]) -> None:
    job: Job | None = task.get("job")
    if job is not None:
        task["status"] = {"queued": "queued", "running": "running"}.get(job.status, "done")
    else:
        task["polls"] += 1
        task["status"] = "running" if task["polls"] <= state.polls_before_done else "done"
    if task["status"] == "done":
        _finish_v1(state, task)


def _finish_v1(state: FakeMineru, task: dict[str, Any]) -> None:
    if state.cancel_task:
        task["status"] = "canceled"
        return
    for file in task["files"]:
        if state.fail_task or file["name"] in state.fail_files:
            file["status"] = "failed"
            kind = "engine_error"
            file["error"] = {"type": kind, "code": state.fail_code, "message": "parse failed"}
        else:
            file["status"] = "completed"
    failed = sum(f["status"] == "failed" for f in task["files"])
    task["status"] = (
        "failed" if failed == len(task["files"]) else "partial" if failed else "completed"
    )


def _envelope(kind: str, code: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message, "param": None}}


HEALTH = {
    "status": "healthy",
    "version": "2.7.0",
    "protocol_version": 1,
    "max_concurrent_requests": 3,
    "processing_window_size": 64,
}


def _public(task: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in task.items() if k != "polls"}, "queued_ahead": 0}


@contextmanager
def serve_mineru(state: FakeMineru | None = None) -> Iterator[FakeMineru]:
    """Run the stand-in on 127.0.0.1 (ephemeral port) for the duration of the block."""
    state = state or FakeMineru()
    handler = type("MineruHandler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    if state.gpu is not None:
        state.gpu.start()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        if state.gpu is not None:
            state.gpu.stop()


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    """Poll ``check()`` until true or ``timeout`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return bool(check())
