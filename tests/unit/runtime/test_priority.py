"""Thread niceness of the work after the parser (Linux: each thread has its own)."""

from __future__ import annotations

import os
import threading

from ingest_ray.runtime.priority import RAY_WORKER_NICENESS, lower_thread_priority


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_thread_lowers_its_own_priority_and_its_new_threads_inherit_it() -> None:
    seen: dict[str, int] = {}

    def child() -> None:
        seen["child"] = _nice()

    def worker() -> None:
        seen["before"] = _nice()
        lower_thread_priority(5)
        seen["after"] = _nice()
        started = threading.Thread(target=child)
        started.start()
        started.join()
        lower_thread_priority(30)  # capped at 19
        seen["capped"] = _nice()

    main = _nice()
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["after"] == min(19, seen["before"] + 5)
    assert seen["child"] == seen["after"]
    assert seen["capped"] == 19
    assert _nice() == main  # the rest of the process keeps its priority


def test_zero_changes_nothing() -> None:
    before = _nice()
    lower_thread_priority(0, base=RAY_WORKER_NICENESS)
    assert _nice() == before


def test_a_base_puts_the_thread_below_rays_workers() -> None:
    seen: list[int] = []

    def worker() -> None:
        lower_thread_priority(2, base=RAY_WORKER_NICENESS)
        seen.append(_nice())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [max(_nice(), RAY_WORKER_NICENESS) + 2]
