"""The CPU meter of the benchmarks counts the CPU of processes that end while it runs, whether
or not their parent waits for them, and counts a waited-for child once; the servers it measures
are found even when the local stack did not start them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from benchmarks.cpu import CpuMeter, loopback_listener

#: a grandchild that burns about this much CPU and ends
BURN_S = 0.8

_PARENT = textwrap.dedent(f"""
    import signal, subprocess, sys, time
    if sys.argv[1] == "ignore":
        # like Ray's raylet: ended children are reaped by the kernel, their CPU reaches no one
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    burn = "import time\\nend = time.process_time() + {BURN_S}\\nwhile time.process_time() < end: pass"
    child = subprocess.Popen([sys.executable, "-c", burn])
    if sys.argv[1] == "ignore":
        while True:
            try:
                child.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            except ChildProcessError:  # reaped by the kernel
                break
    else:
        child.wait()
    print("ended", flush=True)
    sys.stdin.read()  # stays alive until the test closes stdin
""")


def _run_parent(meter: CpuMeter, mode: str) -> dict[str, float]:
    with subprocess.Popen([sys.executable, "-c", _PARENT, mode], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as parent:  # fmt: skip
        assert parent.stdout is not None and parent.stdin is not None
        try:
            assert parent.stdout.readline().strip() == "ended"
            return meter.stop()
        finally:
            parent.stdin.close()
            parent.wait(timeout=30)


@pytest.mark.parametrize("children", [False, True])
def test_a_process_that_ends_under_a_parent_ignoring_sigchld_keeps_its_cpu(
    children: bool,
) -> None:
    meter = CpuMeter(children=children, interval=0.05)
    meter.start()
    cpu = _run_parent(meter, "ignore")
    # the grandchild was read at least once before it ended, at most one interval short
    assert cpu["total"] >= BURN_S * 0.7, cpu


def test_a_waited_for_child_is_counted_once() -> None:
    meter = CpuMeter(children=True, interval=0.05)
    meter.start()
    cpu = _run_parent(meter, "wait")
    # counted as the child's own CPU and again in its parent's waited-for time would be ~2x
    assert BURN_S * 0.7 <= cpu["total"] <= BURN_S * 1.5, cpu


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("ray::bench-ingest_ray-653d/embed/7f92-1:StageActor", "ray::StageActor"),
        ("ray::StageActor.run()", "ray::StageActor"),
        ("ray::rt/ingress/ingest-local-4712/0:KafkaIngress.poll", "ray::KafkaIngress"),
        ("ray::IDLE", "ray::IDLE"),
    ],
)
def test_ray_workers_are_labelled_by_actor_class(
    title: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from benchmarks import cpu

    monkeypatch.setattr(Path, "read_bytes", lambda self: title.encode() + b"\0")
    assert cpu.label(1) == expected


def test_a_broker_the_stack_did_not_start_is_found_by_its_loopback_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert loopback_listener(f"127.0.0.1:{port}") == os.getpid()
    assert loopback_listener(f"127.0.0.1:{port}") is None  # closed: nobody listens
    assert loopback_listener(f"10.0.0.1:{port}") is None  # not ours to measure
