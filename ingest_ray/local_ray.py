"""Start and stop the Ray this process uses, leaving no Ray process behind.

``start`` joins the cluster at ``settings.ray_address``, or starts a local Ray with its dashboard
on loopback. ``stop`` shuts Ray down and then ends, by pid, every process of the local session
this process started that is still running: Ray's own shutdown leaves some behind (its
``DashboardAgent`` and ``RuntimeEnvAgent`` ignore SIGTERM, and nothing reaps them when the
driver goes away). A process belongs to the session when its command line or one of its open
files lies inside the session directory (every Ray process keeps its log files there, workers
included), or when it descends from one that does; processes of other Ray sessions on the same
machine are never touched.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil
import ray

from ingest_ray.config import Settings

log = logging.getLogger(__name__)

#: seconds to wait after SIGTERM before SIGKILL, and after SIGKILL before giving up
TERM_WAIT_S = 3.0


@dataclass
class RaySession:
    """The Ray this process is connected to."""

    namespace: str
    #: True when this process started the local Ray (and so must end its processes)
    owned: bool
    session_dir: str | None = None
    dashboard_url: str | None = None
    #: pids of Ray's own processes (gcs, raylet, dashboard ...) right after start
    root_pids: list[int] = field(default_factory=list)
    #: seconds Ray's processes get to exit after ``ray.shutdown`` before they are ended
    stop_grace_s: float = 5.0


@dataclass(frozen=True, slots=True)
class StopReport:
    """What :func:`stop` had to do besides ``ray.shutdown``."""

    terminated: tuple[int, ...] = ()
    killed: tuple[int, ...] = ()
    survivors: tuple[int, ...] = ()


_lock = threading.Lock()
_session: RaySession | None = None


def current() -> RaySession | None:
    """The session :func:`start` opened, if Ray is still up."""
    return _session if ray.is_initialized() else None


def start(settings: Settings, *, namespace: str = "ingest-ray") -> RaySession:
    """Connect to Ray once per process (later calls return the same session)."""
    global _session  # noqa: PLW0603 - one Ray per process, as ray.init itself
    with _lock:
        if ray.is_initialized():
            if _session is None:  # someone else called ray.init: we own nothing
                _session = RaySession(namespace=namespace, owned=False)
            return _session
        # ray.init installs a SIGTERM handler of its own (sys.exit); keep the command's
        previous = signal.getsignal(signal.SIGTERM)
        try:
            _session = _init(settings, namespace)
        finally:
            if threading.current_thread() is threading.main_thread() and callable(previous):
                signal.signal(signal.SIGTERM, previous)
        atexit.register(_stop_at_exit)
        return _session


def _init(settings: Settings, namespace: str) -> RaySession:
    if settings.ray_address:
        ray.init(address=settings.ray_address, namespace=namespace, log_to_driver=False)
        return RaySession(namespace=namespace, owned=False)
    context = ray.init(
        namespace=namespace,
        num_cpus=settings.ray_local_num_cpus,
        include_dashboard=settings.ray_dashboard,
        dashboard_host=settings.ray_dashboard_host,
        dashboard_port=settings.ray_dashboard_port,
        log_to_driver=False,
    )
    url = getattr(context, "dashboard_url", "") or None
    node = _node()
    return RaySession(
        namespace=namespace,
        owned=True,
        session_dir=node.get_session_dir_path() if node else None,
        dashboard_url=f"http://{url}" if url and "://" not in url else url,
        root_pids=_root_pids(node),
        stop_grace_s=settings.ray_stop_grace_s,
    )


def _node() -> Any:
    # the local node object is private API; without it processes are still found by their
    # session directory (when known) or not at all, and Ray's own shutdown is all there is
    try:
        from ray._private import worker  # noqa: PLC0415
    except ImportError:
        return None
    return getattr(worker, "_global_node", None)


def _root_pids(node: Any) -> list[int]:
    pids: list[int] = []
    for infos in getattr(node, "all_processes", {}).values():
        pids += [info.process.pid for info in infos if getattr(info, "process", None)]
    return pids


def stop(*, grace_s: float | None = None) -> StopReport:
    """Shut Ray down; then end what is left of the local session this process started."""
    global _session
    with _lock:
        session, _session = _session, None
        if session is None or not session.owned:
            if ray.is_initialized():
                ray.shutdown()
            return StopReport()
        before = session_processes(session)
        with contextlib.suppress(Exception):  # a broken session is still cleaned up below
            ray.shutdown()
        wait = session.stop_grace_s if grace_s is None else grace_s
        return end_processes(before, session, grace_s=wait)


def _stop_at_exit() -> None:
    if _session is not None and _session.owned:
        stop()


def session_processes(session: RaySession) -> list[psutil.Process]:
    """Every live process of ``session`` (never this process)."""
    found: dict[int, psutil.Process] = {}
    roots = [*_existing(session.root_pids), *_by_session_dir(session.session_dir)]
    for proc in roots:
        found[proc.pid] = proc
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                found[child.pid] = child
    found.pop(os.getpid(), None)
    return list(found.values())


def _existing(pids: Iterable[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            out.append(psutil.Process(pid))
    return out


def _by_session_dir(session_dir: str | None) -> list[psutil.Process]:
    if not session_dir:
        return []
    me, uid, out = os.getpid(), os.getuid(), []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        if proc.pid == me or proc.info["uids"] is None or proc.info["uids"].real != uid:
            continue
        with contextlib.suppress(psutil.Error):
            if _refers_to(proc, session_dir):
                out.append(proc)
    return out


def _refers_to(proc: psutil.Process, session_dir: str) -> bool:
    if any(session_dir in part for part in proc.info["cmdline"] or ()):
        return True
    return any(f.path.startswith(session_dir) for f in proc.open_files())


def end_processes(
    before: list[psutil.Process], session: RaySession, *, grace_s: float
) -> StopReport:
    """Give ``before`` ``grace_s`` to exit, then SIGTERM, then SIGKILL what is left (by pid;
    psutil checks each process's start time, so a recycled pid is never signalled)."""
    _, alive = psutil.wait_procs(before, timeout=grace_s)
    # anything that started during the shutdown and still holds the session's files
    alive = _live(alive + session_processes(session))
    terminated = tuple(sorted(p.pid for p in alive))
    _signal_all(alive, signal.SIGTERM)
    _, alive = psutil.wait_procs(alive, timeout=TERM_WAIT_S)
    killed = tuple(sorted(p.pid for p in alive))
    _signal_all(alive, signal.SIGKILL)
    _, alive = psutil.wait_procs(alive, timeout=TERM_WAIT_S)
    if terminated:
        log.info("ended %d leftover Ray process(es) of %s", len(terminated), session.session_dir)
    return StopReport(terminated, killed, tuple(sorted(p.pid for p in alive)))


def _live(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    out: dict[int, psutil.Process] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out[proc.pid] = proc
    return list(out.values())


def _signal_all(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
