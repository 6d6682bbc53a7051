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


def _stat(pid: int, *, children: bool = False) -> tuple[int, float] | None:
    """(parent pid, utime + stime seconds) of ``pid``, ``None`` when it is gone; with
    ``children`` also the CPU of its children that ended and were waited for."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return int(fields[1]), ticks / _TICK


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
    """CPU seconds per process label between :meth:`start` and :meth:`stop`.

    With ``children`` the meter also counts processes that start and end between the two
    readings (a parser child per PDF, actors killed at the end): their CPU reaches their
    parent's "waited-for children" time. A process seen at the start and gone at the stop is
    then counted through its parent, from its start (its first reading is taken off)."""

    def __init__(self, extra: dict[str, int] | None = None, *, children: bool = False) -> None:
        self._extra = {pid: name for name, pid in (extra or {}).items()}
        self._children = children
        self._before: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        pids = set(descendants(os.getpid())) | set(self._extra)
        out = {}
        for pid in pids:
            stat = _stat(pid, children=self._children)
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
        if self._children:
            gone = sum(v for pid, v in self._before.items() if pid not in after)
            if gone:
                by_label["ended processes (counted in their parent)"] -= gone
        ordered = dict(sorted(by_label.items(), key=lambda kv: -kv[1]))
        ordered = {k: round(v, 2) for k, v in ordered.items() if abs(v) >= 0.01}
        return {"total": round(sum(by_label.values()), 2), **ordered}


def server_pids(redis_url: str, kafka_bootstrap: str) -> dict[str, int]:
    """Pids of the local Redis (from ``INFO``) and of Kafka when the local stack runs it."""
    import contextlib  # noqa: PLC0415

    import redis  # noqa: PLC0415

    from ingest_ray.config import Settings  # noqa: PLC0415
    from ingest_ray.stack.launcher import LocalStack  # noqa: PLC0415

    out: dict[str, int] = {}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    host = str(client.connection_pool.connection_kwargs.get("host", ""))
    with contextlib.suppress(redis.RedisError):
        if host in {"127.0.0.1", "localhost", "::1"}:
            out["redis-server (shared)"] = int(client.info("server")["process_id"])
    client.close()
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url)
    for status in LocalStack.from_settings(settings).status():
        if status.name == "kafka" and status.pid:
            out["kafka broker (shared)"] = status.pid
    return {name: pid for name, pid in out.items() if Path(f"/proc/{pid}").exists()}
