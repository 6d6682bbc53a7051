"""A stand-in ``mineru-api`` on loopback that follows MinerU's documented request/response format
(``mineru/cli/fast_api.py``, ``api_response_models.py``): multipart ``files`` + form options in,
``{"backend", "version", "results": {stem: {"content_list": "<JSON string>"}}}`` out; the tasks
API answers 202 with ``task_id``/``status_url``/``result_url`` and walks a task through
``pending`` -> ``processing`` -> ``completed`` (or ``failed``).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


@dataclass
class FakeMineru:
    """Behaviour switches and a record of what the server received."""

    fail_task: bool = False  # the task ends "failed"
    busy: bool = False  # every parse request gets 503 + Retry-After
    reject_upload: bool = False  # 400, as MinerU answers a file it cannot load
    polls_before_done: int = 2
    content_list_as_string: bool = True
    requests: list[tuple[str, str]] = field(default_factory=list)
    forms: list[dict[str, list[str]]] = field(default_factory=list)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""

    def results(self, stem: str) -> dict[str, Any]:
        content = json.dumps(CONTENT_LIST) if self.content_list_as_string else CONTENT_LIST
        return {
            "backend": "pipeline",
            "version": "2.7.0",
            "results": {stem: {"content_list": content}},
        }


class _Handler(BaseHTTPRequestHandler):
    state: FakeMineru  # set on a per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.state.requests.append(("GET", self.path))
        if self.path == "/health":
            self._send(200, HEALTH)
            return
        parts = self.path.strip("/").split("/")
        task = self.state.tasks.get(parts[1]) if len(parts) >= 2 and parts[0] == "tasks" else None
        if task is None:
            self._send(404, {"detail": "Task not found"})
        elif len(parts) == 2:
            self._send(200, self._advance(task))
        elif task["status"] != "completed":
            self._send(409, {**_public(task), "message": "Task result is not ready"})
        else:
            self._send(200, self.state.results(task["file_names"][0]))

    def _advance(self, task: dict[str, Any]) -> dict[str, Any]:
        """One status poll: pending -> processing -> completed/failed after enough polls."""
        task["polls"] += 1
        if task["polls"] > self.state.polls_before_done:
            task["status"] = "failed" if self.state.fail_task else "completed"
            if self.state.fail_task:
                task["error"] = "Failed to process file: CUDA out of memory"
        elif task["polls"] > 1:
            task["status"] = "processing"
        return _public(task)

    def do_POST(self) -> None:
        self.state.requests.append(("POST", self.path))
        form, files = self._multipart()
        if self.state.busy:
            self._send(503, {"detail": "Server is at maximum capacity: 3."}, {"Retry-After": "7"})
            return
        self.state.forms.append(form)
        if self.state.reject_upload or not files or form.get("return_content_list") != ["true"]:
            self._send(400, {"error": "Failed to load file: Unknown file suffix: bin"})
            return
        name, data = files[0]
        self.state.uploads.append((name, data))
        stem = name.rsplit(".", 1)[0]
        if self.path == "/file_parse":
            self._send(200, self.state.results(stem))
            return
        task_id = str(uuid.uuid4())
        self.state.tasks[task_id] = task = {
            "task_id": task_id,
            "status": "pending",
            "backend": form["backend"][0],
            "file_names": [stem],
            "created_at": "2025-01-01T00:00:00Z",
            "polls": 0,
            "status_url": f"{self.state.url}/tasks/{task_id}",
            "result_url": f"{self.state.url}/tasks/{task_id}/result",
        }
        self._send(202, {**_public(task), "message": "Task submitted successfully"})

    def _multipart(self) -> tuple[dict[str, list[str]], list[tuple[str, bytes]]]:
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
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
