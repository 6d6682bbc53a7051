"""A local replay of OpenAlex, Unpaywall and CORE from captured responses.

The server binds 127.0.0.1 on an ephemeral port and answers API-shaped paths from a directory
laid out like ``shared/fixtures/apis``::

    openalex/work_*.json, openalex/list_*.json   GET /works/{doi:X | https://doi.org/X | W123}
    unpaywall/doi_*.json                         GET /v2/{doi}?email=...
    core/search_*.json (CORE v3 search pages)    GET /v3/search/works[/]?q=doi:"X"
    <source>/error_<status>_*.json               the body shape of that source's errors

Files are matched by the identifiers inside their JSON (``doi``, ``id``), case-insensitively,
so abbreviated file names of SICI DOIs do not matter. Unknown identifiers get a 404 JSON body
like the real API's. Faults can be planned (``add_fault("/works/", status=429, times=2,
retry_after="1")``) and every request is recorded, so tests can count what the clients sent.
The three APIs use disjoint paths, so one server stands in for all of them
(:func:`adapter_settings_for`).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ingest_ray.adapters.catalog import Catalog
from ingest_ray.adapters.settings import AdapterSettings

_DOI_TERM = re.compile(r'doi:"((?:[^"\\]|\\.)*)"', re.I)
_WORK_PATH = re.compile(r"^/works/(.+)$")
_UNPAYWALL_PATH = re.compile(r"^/v2/(.+)$")
_CORE_WORK_PATH = re.compile(r"^/v3/works/([^/]+)/?$")
REPLAY_EMAIL = "replay@example.org"

Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received: decoded path, raw target and query."""

    path: str
    raw_target: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path contains ``path_contains`` with ``status``."""

    path_contains: str
    status: int
    times: int
    retry_after: str | None = None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, dict(headers or {}), json.dumps(body).encode()


class ReplayServer:
    """Serves captured API responses on 127.0.0.1; a context manager that starts and stops."""

    def __init__(self, root: Path, *, core_dir: Path | None = None) -> None:
        self.catalog = Catalog.load(Path(root), core_dir=core_dir)
        self._faults: list[Fault] = []
        self._files: dict[str, tuple[str, bytes]] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:{port}`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("replay server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Bind an ephemeral loopback port, serve in a thread, return the base URL."""
        if self._httpd is not None:
            return self.base_url
        handler = type("_BoundHandler", (_Handler,), {"replay": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="replay-server",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults and the request log -------------------------------------------------------

    def add_fault(
        self,
        path_contains: str,
        *,
        status: int = 429,
        times: int = 1,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``Retry-After``)."""
        with self._lock:
            self._faults.append(Fault(path_contains, status, times, retry_after))

    def add_file(self, path: str, data: bytes, *, content_type: str = "application/pdf") -> str:
        """Serve ``data`` at ``path`` (e.g. a PDF for the fetcher); return its full URL."""
        with self._lock:
            self._files[path] = (content_type, data)
        return f"{self.base_url}{path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def count(self, path_contains: str = "") -> int:
        """How many requests had ``path_contains`` in their decoded path."""
        return sum(1 for r in self.requests if path_contains in r.path)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.path_contains in path:
                    fault.times -= 1
                    return fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- routing ----------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]]) -> Reply:
        """The reply to ``GET path?query`` (decoded path): a planned fault, a file, or the API."""
        fault = self._take_fault(path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _json(fault.status, {"error": "injected fault", "status": fault.status}, headers)
        with self._lock:
            static = self._files.get(path)
        if static is not None:
            return 200, {"Content-Type": static[0]}, static[1]
        return self._route(path, query)

    def _route(self, path: str, query: dict[str, list[str]]) -> Reply:
        if match := _WORK_PATH.match(path):
            return self._openalex(match.group(1), query)
        if match := _UNPAYWALL_PATH.match(path):
            return self._unpaywall(match.group(1), query)
        if path.rstrip("/") == "/v3/search/works":
            return self._core_search(query)
        if match := _CORE_WORK_PATH.match(path):
            return self._core_work(match.group(1))
        return _json(404, {"error": "404 Not Found", "message": f"no route for {path}"})

    def _openalex(self, ident: str, query: dict[str, list[str]]) -> Reply:
        work = self.catalog.openalex_work(ident)
        if work is None:
            return _json(
                404, {"error": "404 Not Found", "message": f"'{ident}' is not an OpenAlex work"}
            )
        select = query.get("select", [""])[0]
        if not select:
            return 200, {}, work.raw
        fields = [f.strip() for f in select.split(",") if f.strip()]
        bad = self.catalog.invalid_select(fields)
        if bad:
            return _json(400, self.catalog.select_error(bad))
        return _json(200, {k: work.body[k] for k in fields if k in work.body})

    def _unpaywall(self, doi: str, query: dict[str, list[str]]) -> Reply:
        if not query.get("email", [""])[0]:
            return _json(
                422,
                {"HTTP_status_code": 422, "error": True, "message": "email param is required"},
            )
        record = self.catalog.unpaywall_record(doi)
        if record is None:
            return _json(404, self.catalog.unpaywall_not_found(doi))
        return 200, {}, record.raw

    def _core_search(self, query: dict[str, list[str]]) -> Reply:
        q = query.get("q", [""])[0]
        limit = int(query.get("limit", ["10"])[0] or 10)
        match = _DOI_TERM.search(q)
        results = []
        if match is not None:
            doi = re.sub(r"\\(.)", r"\1", match.group(1))
            results = self.catalog.core_works_by_doi(doi)
        body = {"totalHits": len(results), "limit": limit, "offset": 0, "results": results[:limit]}
        return _json(200, body)

    def _core_work(self, ident: str) -> Reply:
        work = self.catalog.core_work(ident)
        if work is None:
            return _json(404, {"message": f"Work {ident} not found"})
        return _json(200, work)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into :meth:`ReplayServer.answer` calls."""

    replay: ReplayServer
    server_version = "ingest-ray-replay/1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        try:
            status, headers, body = self.replay.answer(path, query)
        except Exception as exc:  # a replay bug must answer, not hang the client
            status, headers, body = _json(500, {"error": f"replay failed: {exc!r}"})
        self.replay._record(
            RecordedRequest(path, self.path, query, dict(self.headers.items()), status)
        )
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the request log instead."""


def adapter_settings_for(base_url: str, **overrides: Any) -> AdapterSettings:
    """Settings pointing OpenAlex, Unpaywall and CORE at a replay server, without rate limits."""
    values: dict[str, Any] = {
        "openalex_base_url": base_url,
        "unpaywall_base_url": base_url,
        "core_base_url": base_url,
        "openalex_mailto": REPLAY_EMAIL,
        "openalex_api_key": None,
        "unpaywall_email": REPLAY_EMAIL,
        "core_api_key": "replay",
        "rate_limit_backend": "none",
    }
    values.update(overrides)
    return AdapterSettings(**values)


__all__ = ["Fault", "RecordedRequest", "ReplayServer", "adapter_settings_for"]
