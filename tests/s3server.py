"""A real S3-compatible HTTP server on loopback for the tests: moto in server mode.

moto's server speaks the S3 REST API over HTTP (SigV4 requests, multipart uploads, conditional
``If-None-Match`` puts), which is what obstore and LanceDB send; it keeps objects in memory, so
every test makes its own bucket. It runs as its own process (``python -m moto.server``) so the
clients under test talk to it over a real socket, as they would to S3 or MinIO.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ingest_ray.ports import free_port

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


@dataclass
class S3Server:
    """One moto server process; :meth:`start` it, make buckets, :meth:`stop` it."""

    endpoint: str = ""
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: the server's request log (a file: a pipe nobody reads would fill and stall the server)
    log: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="moto-")) / "log")

    def start(self, timeout_s: float = 60.0, attempts: int = 3) -> S3Server:
        """Start on a free port (a few tries, in case another process takes the port first)."""
        errors = []
        for _ in range(attempts):
            port = free_port()
            with self.log.open("ab") as log:  # the child keeps its own descriptor
                proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            endpoint = f"http://127.0.0.1:{port}"
            if _wait_ready(proc, endpoint, timeout_s):
                self.endpoint, self._proc = endpoint, proc
                return self
            errors.append(_stop(proc, self.log))
        raise RuntimeError(f"moto server did not start: {' | '.join(errors)}"[:2000])

    def stop(self) -> None:
        """Terminate the server (bounded wait, then kill)."""
        if self._proc is not None:
            _stop(self._proc, self.log)
            self._proc = None
        shutil.rmtree(self.log.parent, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The environment a client process needs: the usual AWS variables."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket of this test's own; returns its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        response = httpx.put(f"{self.endpoint}/{name}", timeout=10.0)
        response.raise_for_status()
        return name


def _wait_ready(proc: subprocess.Popen[bytes], endpoint: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{endpoint}/moto-api/data.json", timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    tail = log.read_bytes()[-500:].decode(errors="replace") if log.exists() else ""
    return f"exit {proc.returncode}: {tail.strip()}"


def moto_available() -> str | None:
    """``None`` when moto's server mode can run here, else why not."""
    try:
        import flask  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"moto[server] is not installed ({exc}); pip install -e '.[test]'"
    return None


def client_env(server: S3Server, **extra: str) -> dict[str, str]:
    """This process's environment plus the S3 variables (for child processes)."""
    return {**os.environ, **server.env(), **extra}
