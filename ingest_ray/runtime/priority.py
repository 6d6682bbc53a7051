"""CPU priority of the work after the parser: where it shares a node's cores with the parser
and the stages that feed it, those go first (``Settings.downstream_nice``).

On Linux a thread's niceness is its own: ``os.nice`` changes only the caller's thread, and
threads started later inherit their creator's."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

#: the niceness Ray starts its worker processes at (its ``worker_niceness``), so a stage
#: actor's calls run at it and a pool's ``nice`` is added to it
RAY_WORKER_NICENESS = 15


def lower_priority(by: int) -> None:
    """Raise the niceness of every thread of this process by ``by`` (at most 19); for a Ray
    actor's process, whose ``__init__`` does not run on the thread its calls run on."""
    tasks = Path("/proc/self/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        _lower(tid, by)


def lower_thread_priority(by: int, *, base: int = 0) -> None:
    """Raise the niceness of the calling thread to ``by`` above ``base`` (or above its own, if
    that is higher; at most 19), and so of the threads it starts from now on; for work on a
    thread of a process shared with other work. With ``base=RAY_WORKER_NICENESS`` the thread
    yields to Ray's stage actors as the pools after the parser do."""
    _lower(threading.get_native_id(), by, base)


def _lower(tid: int, by: int, base: int = 0) -> None:
    if by <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):  # a thread that ended
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, max(current, base) + by))
