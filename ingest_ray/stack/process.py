"""A service process the launcher started itself, remembered by pid file.

The pid file records the pid and the service's own config path; before signalling a pid the
launcher checks that the process still runs that config, so it never stops a stranger (a recycled
pid, or a Redis someone else started) and never looks processes up by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest_ray.errors import StackError


@dataclass(frozen=True, slots=True)
class PidRecord:
    """What the pid file holds."""

    pid: int
    marker: str


class ManagedProcess:
    """Start, find and stop one background process identified by its pid file."""

    def __init__(self, name: str, run_dir: Path, log_path: Path) -> None:
        self.name = name
        self.pid_path = run_dir / f"{name}.pid"
        self.log_path = log_path

    def record(self) -> PidRecord | None:
        """The recorded process if it is still alive and still ours, else ``None``."""
        try:
            data = json.loads(self.pid_path.read_text())
            rec = PidRecord(pid=int(data["pid"]), marker=str(data["marker"]))
        except (FileNotFoundError, ValueError, KeyError):
            return None
        return rec if _is_ours(rec) else None

    def start(self, argv: Sequence[str], *, marker: str, env: dict[str, str] | None = None) -> int:
        """Launch ``argv`` in its own session with output to the log file; record its pid."""
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # posix_spawn, not Popen: the service outlives this process, so there is no child
        # object to keep; stdout/stderr go to the log, stdin is /dev/null, new session.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        pid = os.posix_spawnp(
            argv[0],
            list(argv),
            {**os.environ, **(env or {})},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.log_path), flags, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        self.pid_path.write_text(json.dumps({"pid": pid, "marker": marker}))
        _await_exec(PidRecord(pid=pid, marker=marker), timeout=5.0)
        return pid

    def adopt(self, pid: int, *, marker: str) -> None:
        """Record a process that started itself (a worker writes its own pid file)."""
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.write_text(json.dumps({"pid": pid, "marker": marker}))

    def alive(self) -> bool:
        """Whether our recorded process still runs."""
        return self.record() is not None

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM our process (SIGKILL after ``timeout``); False when there was nothing to stop."""
        rec = self.record()
        if rec is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        _signal(rec.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_ours(rec):
            time.sleep(0.2)
        if _is_ours(rec):
            _signal(rec.pid, signal.SIGKILL)
            _wait_gone(rec, 10.0)
        self.pid_path.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _is_ours(rec: PidRecord) -> bool:
    _reap(rec.pid)
    try:
        os.kill(rec.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not Path("/proc/self").exists():  # no procfs (macOS): trust the pid file
        return True
    try:
        text = (
            Path(f"/proc/{rec.pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode(errors="replace")
        )
        status = Path(f"/proc/{rec.pid}/stat").read_text()
    except OSError:
        return False
    zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
    return rec.marker in text and not zombie


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (avoids zombies in tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(rec: PidRecord, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_ours(rec):
            return
        time.sleep(0.1)
    raise StackError(f"process {rec.pid} did not exit after SIGKILL")


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited by itself meanwhile
        os.kill(pid, sig)


def _await_exec(rec: PidRecord, timeout: float) -> None:
    """Wait until the child shows its new command line (empty until its exec completes), so a
    ``record()`` right after ``start()`` recognises it. A child that dies is left to the caller."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _is_ours(rec):
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            if os.waitpid(rec.pid, os.WNOHANG) != (0, 0):
                return
        time.sleep(0.005)
