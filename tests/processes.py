"""The process table for shutdown tests: what a command started, and whether it is gone.

A process is identified by pid *and* start time (a recycled pid is another process). A command's
processes are its descendants plus every process of the Ray session it started: those hold a
file (their logs) in the session directory or name it on their command line. The session
directory is read from the descendants' command lines (the raylet and gcs name it), so the test
does not depend on the code it checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass

import psutil

_SESSION = re.compile(r"(/\S*?/session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+)")


@dataclass(frozen=True)
class Proc:
    """One process, as seen at one moment."""

    pid: int
    started: float
    name: str

    @classmethod
    def of(cls, proc: psutil.Process) -> Proc | None:
        try:
            return cls(proc.pid, proc.create_time(), proc.name())
        except psutil.Error:
            return None

    def running(self) -> bool:
        """Still the same process, and not a zombie."""
        try:
            proc = psutil.Process(self.pid)
            return proc.create_time() == self.started and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def descendants(pid: int) -> set[Proc]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return set()
    return {p for p in map(Proc.of, children) if p is not None}


def session_dirs(procs: set[Proc]) -> set[str]:
    """Ray session directories named on the command lines of ``procs``."""
    found: set[str] = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            found.update(_SESSION.findall(" ".join(psutil.Process(proc.pid).cmdline())))
    return found


def session_members(session_dir: str) -> set[Proc]:
    """Live processes holding a file in, or naming, ``session_dir`` (never this process)."""
    out: set[Proc] = set()
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            named = any(session_dir in part for part in proc.info["cmdline"] or ())
            if named or any(f.path.startswith(session_dir) for f in proc.open_files()):
                p = Proc.of(proc)
                if p is not None and p.running():
                    out.add(p)
    return out


def snapshot(pid: int) -> tuple[set[Proc], set[str]]:
    """Everything ``pid`` started: descendants and Ray session members; and the sessions."""
    procs = descendants(pid)
    dirs = session_dirs(procs)
    for session in dirs:
        procs |= session_members(session)
    return procs, dirs


def wait_gone(procs: set[Proc], timeout: float) -> set[Proc]:
    """The processes of ``procs`` still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = {p for p in procs if p.running()}
    while alive and time.monotonic() < deadline:
        time.sleep(0.25)
        alive = {p for p in alive if p.running()}
    return alive


def end(procs: set[Proc]) -> None:
    """Kill what a failed test left behind (only processes it started itself)."""
    for proc in procs:
        if proc.running():
            with contextlib.suppress(psutil.Error):
                psutil.Process(proc.pid).kill()
