"""CPU seconds spent per process while a system runs its measured jobs (Linux ``/proc``).

On a shared 2-core machine jobs/s moves with whatever else runs; the CPU a system burns per job
moves much less, and it says where the time goes. The meter covers this process, every process
it started (Ray's daemons and actors, the peers' workers) and, when their pids are known, the
Redis and Kafka servers (shared with anything else that uses them).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime seconds) of ``pid``, ``None`` when it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children[stat[0]].append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def label(pid: int) -> str:
    """A readable name: ``ray::Dispatcher``, ``raylet``, ``celery worker``, a script name."""
    try:
        argv = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in argv if a]
    if not args:
        return "?"
    head = args[0].split()[0]
    if head.startswith("ray::"):
        return head.split(".")[0].split("(")[0]
    for worker in ("celery", "dramatiq"):
        if any(worker == Path(a).name or a == worker for a in args[:4]):
            return f"{worker} worker"
    scripts = [Path(a).name for a in args if a.endswith(".py")]
    return scripts[0] if scripts else Path(head).name


class CpuMeter:
    """CPU seconds per process label between :meth:`start` and :meth:`stop`."""

    def __init__(self, extra: dict[str, int] | None = None) -> None:
        self._extra = {pid: name for name, pid in (extra or {}).items()}
        self._before: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        pids = set(descendants(os.getpid())) | set(self._extra)
        out = {}
        for pid in pids:
            stat = _stat(pid)
            if stat is not None:
                out[pid] = stat[1]
        return out

    def start(self) -> None:
        """Take the first reading."""
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds since :meth:`start` per label, largest first, with ``total``."""
        after = self._sample()
        by_label: dict[str, float] = defaultdict(float)
        for pid, seconds in after.items():
            used = seconds - self._before.get(pid, 0.0)
            if used > 0:
                name = self._extra.get(pid) or label(pid)
                by_label["driver" if pid == os.getpid() else name] += used
        ordered = dict(sorted(by_label.items(), key=lambda kv: -kv[1]))
        ordered = {k: round(v, 2) for k, v in ordered.items() if v >= 0.01}
        return {"total": round(sum(by_label.values()), 2), **ordered}
