"""CPU seconds spent per process while a system runs its measured jobs (Linux ``/proc``).

On a shared 2-core machine jobs/s moves with whatever else runs; the CPU a system burns per job
moves much less, and it says where the time goes. The meter covers this process, every process
it started (Ray's daemons and actors, the peers' workers) and, when their pids are known, the
Redis and Kafka servers (shared with anything else that uses them).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own utime + stime, utime + stime of its ended and waited-for children) of
    ``pid`` in seconds, ``None`` when it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / _TICK
    kids = (int(fields[13]) + int(fields[14])) / _TICK
    return int(fields[1]), own, kids


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used so far, ``None`` when it is gone."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


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
    if head.startswith("ray::"):  # "ray::Class.method()" or, for a named actor, "ray::name:Class"
        return "ray::" + head[5:].rsplit(":", 1)[-1].split(".")[0].split("(")[0]
    for worker in ("celery", "dramatiq"):
        if any(worker == Path(a).name or a == worker for a in args[:4]):
            return f"{worker} worker"
    scripts = [Path(a).name for a in args if a.endswith(".py")]
    return scripts[0] if scripts else Path(head).name


#: labels a Ray worker has before it takes its actor's name
_UNSETTLED = {"?", "ray::IDLE", "default_worker.py"}


@dataclass
class _Process:
    """What the meter knows of one process: its readings at first sight and at the last one."""

    ppid: int
    label: str
    own_first: float
    kids_first: float
    own: float
    kids: float


class CpuMeter:
    """CPU seconds per process label between :meth:`start` and :meth:`stop`.

    A thread reads every ``interval`` seconds, so a process that ends between the two calls
    keeps the CPU of its last reading: Ray's raylet ignores SIGCHLD, so the CPU of an actor
    that ends (a pool shrinking, Ray Data releasing its map workers) reaches no parent and would
    otherwise be lost. A process first seen after :meth:`start` counts from zero.

    With ``children`` the CPU of ended children that their parent waited for counts too (a
    parser child per PDF, shorter than one interval): the parent's "waited-for children" time,
    less what the meter already counted of those children itself. The sampling thread's own
    CPU is taken off the driver's."""

    def __init__(
        self, extra: dict[str, int] | None = None, *, children: bool = False,
        interval: float = 0.5,
    ) -> None:  # fmt: skip
        self._extra = {pid: name for name, pid in (extra or {}).items()}
        self._children = children
        self._interval = interval
        self._seen: dict[int, _Process] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampler_cpu = 0.0

    def _sample(self, *, first: bool = False) -> set[int]:
        """Read every process below this one and the extra pids; answers the live pids."""
        live = set()
        for pid in set(descendants(os.getpid())) | set(self._extra):
            stat = _stat(pid)
            if stat is None:
                continue
            live.add(pid)
            ppid, own, kids = stat
            known = self._seen.get(pid)
            if known is None:
                name = self._extra.get(pid) or label(pid)
                base = (own, kids) if first else (0.0, 0.0)
                self._seen[pid] = _Process(ppid, name, *base, own, kids)
                continue
            known.ppid, known.own, known.kids = ppid, own, kids
            if known.label in _UNSETTLED:
                known.label = label(pid)
        return live

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._sample()
        self._sampler_cpu = time.thread_time()

    def start(self) -> None:
        """Take the first reading and start reading in the background."""
        self._seen.clear()
        self._stopping.clear()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds since :meth:`start` per label, largest first, with ``total``."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        live = self._sample()
        # what a parent's waited-for children time holds of processes the meter saw end
        reaped: dict[int, float] = defaultdict(float)
        for pid, proc in self._seen.items():
            if pid not in live:
                reaped[proc.ppid] += proc.own + proc.kids
        by_label: dict[str, float] = defaultdict(float)
        for pid, proc in self._seen.items():
            used = proc.own - proc.own_first
            if self._children:
                used += max(0.0, proc.kids - proc.kids_first - reaped.get(pid, 0.0))
            if pid == os.getpid():
                by_label["driver"] += used - self._sampler_cpu
            elif used > 0:
                by_label[proc.label] += used
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
    if "kafka broker (shared)" not in out:  # a broker on loopback the stack did not start
        listener = loopback_listener(kafka_bootstrap.split(",", maxsplit=1)[0])
        if listener is not None:
            out["kafka broker (shared)"] = listener
    return {name: pid for name, pid in out.items() if Path(f"/proc/{pid}").exists()}


def loopback_listener(address: str) -> int | None:
    """The pid listening on ``address`` (``host:port``) when the host is loopback, else (or when
    the process's sockets cannot be read) ``None``."""
    import psutil  # noqa: PLC0415

    host, _, port = address.rpartition(":")
    if host not in {"127.0.0.1", "localhost", "::1"} or not port.isdigit():
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == int(port):
            return conn.pid
    return None
