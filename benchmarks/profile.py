"""Sampling profiles of running processes with py-spy, summarised as hot spots.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``); the summary
gives, per process, how busy it was (samples / (duration x rate)) and the functions with the most
self and inclusive samples. Only local processes are sampled (py-spy attaches by pid).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def py_spy_binary() -> str | None:
    """py-spy next to this interpreter, or on ``PATH``."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class ProcessProfile:
    """The summary of one sampled process."""

    name: str
    pid: int
    samples: int = 0
    #: non-idle samples per possible sample: ~1.0 means one thread busy all the time
    active: float = 0.0
    top_self: list[tuple[str, float]] = field(default_factory=list)
    top_inclusive: list[tuple[str, float]] = field(default_factory=list)
    #: inclusive share of the project's own functions (where in ingest_ray the time goes)
    top_own: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name, "pid": self.pid, "samples": self.samples,
            "active_threads": round(self.active, 3),
            "top_self_pct": [[f, round(p, 1)] for f, p in self.top_self],
            "top_inclusive_pct": [[f, round(p, 1)] for f, p in self.top_inclusive],
            "top_ingest_ray_pct": [[f, round(p, 1)] for f, p in self.top_own],
        }  # fmt: skip


class PySpy:
    """Records every target process while the benchmark runs, one py-spy each."""

    def __init__(self, targets: dict[str, int], out_dir: Path, *, rate: int = 100) -> None:
        self.targets = targets
        self.out_dir = out_dir
        self.rate = rate
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._started = 0.0

    def start(self) -> None:
        """Attach to each target (needs ptrace rights over them, e.g. the same user as root)."""
        binary = py_spy_binary()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.targets.items():
            out = self.out_dir / f"{_safe(name)}.txt"
            cmd = [binary, "record", "--pid", str(pid), "--rate", str(self.rate), "--function",
                   "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
            self._procs[name] = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        self._started = time.monotonic()

    def stop(self, top: int = 12) -> list[ProcessProfile]:
        """Stop recording (SIGINT makes py-spy write its file) and summarise each process."""
        duration = max(time.monotonic() - self._started, 1e-9)
        for proc in self._procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        out = []
        for name, pid in self.targets.items():
            path = self.out_dir / f"{_safe(name)}.txt"
            out.append(summarise(name, pid, path, duration * self.rate, top=top))
        return out


def summarise(
    name: str, pid: int, path: Path, possible_samples: float, *, top: int = 12
) -> ProcessProfile:
    """Hot spots of one collapsed-stack file."""
    profile = ProcessProfile(name, pid)
    if not path.exists():
        return profile
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        profile.samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if profile.samples:
        total = profile.samples
        profile.active = total / possible_samples if possible_samples else 0.0
        profile.top_self = [(f, 100 * n / total) for f, n in own.most_common(top)]
        ranked = [(f, 100 * n / total) for f, n in inclusive.most_common()]
        profile.top_inclusive = [(f, p) for f, p in ranked if _interesting(f)][:top]
        profile.top_own = [(f, p) for f, p in ranked if "ingest_ray/" in f and p < 99.5][:top]
    return profile


def _short(frame: str) -> str:
    """py-spy already names files by package (``ray/actor.py``); drop any leading path."""
    func, _, where = frame.partition(" (")
    return f"{func} ({where.rsplit('site-packages/', 1)[-1]}" if where else func


def _interesting(frame: str) -> bool:
    boring = ("<module>", "run (threading.py", "_bootstrap", "main_loop", "_run_once",
              "run_forever", "_run (asyncio/events.py", "_resume_span", "auto_init_wrapper",
              "_start_span", "_worker (concurrent", "_WorkItem.run")  # fmt: skip
    return not any(b in frame for b in boring)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
