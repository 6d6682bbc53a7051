"""Stage code time, measured inside every system the same way: a wrapper around the built-in
stage object records the calls, and the CPU and wall time while at least one call runs in its
process (so overlapping calls are not counted twice). CPU is the process's own plus that of its
waited-for children (the CPU parser runs in a child per PDF).

Each process writes its figures to ``{timing_dir}/{stage}.{pid}.json`` after every call; the
directory travels in ``Settings.sections["bench"]["timing_dir"]``, so Ray actors find it.
``Settings.sections["bench"]["factories"]`` may replace a stage's implementation (the simulated
accelerator of ``bench accel``).
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.pipelines.builtin import STAGE_FACTORIES
from ingest_ray.pipelines.catalog import load_factory
from ingest_ray.stages.base import Stage, StageInput, StageOutput

#: the catalog path of the wrapping factory
TIMED = "benchmarks.pdf.timing:timed"


def process_cpu() -> float:
    """CPU seconds of this process and of its children that ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Recorder:
    """The figures of one stage in one process."""

    def __init__(self, directory: Path, stage: str) -> None:
        self.path = directory / f"{stage}.{os.getpid()}.json"
        self.stage = stage
        self.calls = self.items = self._active = 0
        self.call_wall_s = self.busy_wall_s = self.cpu_s = 0.0
        #: building the stage (loading its model, opening its clients)
        self.init_cpu_s = self.init_wall_s = 0.0
        self.first_start: float | None = None
        self.last_end: float | None = None
        self._cpu_mark = self._wall_mark = 0.0
        directory.mkdir(parents=True, exist_ok=True)

    def build(self, make: Callable[[], Stage]) -> Stage:
        """Build the stage, timing its construction as stage code too."""
        cpu, started = process_cpu(), time.perf_counter()
        try:
            return make()
        finally:
            self.init_cpu_s += process_cpu() - cpu
            self.init_wall_s += time.perf_counter() - started
            self._flush()

    def enter(self) -> float:
        """A call starts; answers its start time."""
        now = time.perf_counter()
        if self._active == 0:
            self._cpu_mark, self._wall_mark = process_cpu(), now
        self._active += 1
        if self.first_start is None:
            self.first_start = time.time()
        return now

    def exit(self, started: float, items: int) -> None:
        """A call of ``items`` jobs ended."""
        now = time.perf_counter()
        self._active -= 1
        self.calls += 1
        self.items += items
        self.call_wall_s += now - started
        if self._active == 0:
            self.busy_wall_s += now - self._wall_mark
            self.cpu_s += process_cpu() - self._cpu_mark
        self.last_end = time.time()
        self._flush()

    def _flush(self) -> None:
        data = {"stage": self.stage, "pid": os.getpid(), "calls": self.calls,
                "items": self.items, "call_wall_s": self.call_wall_s,
                "busy_wall_s": self.busy_wall_s, "cpu_s": self.cpu_s,
                "init_cpu_s": self.init_cpu_s, "init_wall_s": self.init_wall_s,
                "first_start": self.first_start, "last_end": self.last_end}  # fmt: skip
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)


class TimedStage:
    """A built-in stage with its calls recorded; behaves exactly as the stage it wraps."""

    def __init__(self, inner: Stage, recorder: Recorder) -> None:
        self.inner = inner
        self.name = inner.name
        self.batch_size = inner.batch_size
        self.recorder = recorder

    async def run(self, item: StageInput) -> StageOutput:
        """The wrapped stage's ``run``."""
        started = self.recorder.enter()
        try:
            return await self.inner.run(item)
        finally:
            self.recorder.exit(started, 1)

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """The wrapped stage's ``run_batch``."""
        started = self.recorder.enter()
        try:
            return await self.inner.run_batch(items)
        finally:
            self.recorder.exit(started, len(items))

    async def aclose(self) -> None:
        """The wrapped stage's ``aclose``."""
        await self.inner.aclose()


def bench_section(settings: Settings) -> dict[str, Any]:
    """``Settings.sections["bench"]``."""
    return dict(settings.sections.get("bench", {}))


def build_stage(settings: Settings, name: str) -> Stage:
    """The real stage ``name`` (or its replacement named in the bench section), unwrapped."""
    path = bench_section(settings).get("factories", {}).get(name) or STAGE_FACTORIES[name]
    factory = load_factory(path)
    arity = len(inspect.signature(factory).parameters)
    return cast(Stage, factory(*(settings, name)[: min(arity, 2)]))


def timed(settings: Settings, name: str) -> Stage:
    """Catalog factory: the stage ``name``, wrapped in a :class:`TimedStage`."""
    recorder = Recorder(Path(bench_section(settings)["timing_dir"]), name)
    inner = recorder.build(lambda: build_stage(settings, name))
    return cast(Stage, TimedStage(inner, recorder))


def read_timings(directory: Path) -> dict[str, dict[str, Any]]:
    """Per stage: calls, items, CPU and wall seconds summed over the processes that ran it;
    ``cpu_s`` is the calls' CPU plus the construction's (``init_cpu_s``)."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "processes": 0, "calls": 0, "items": 0, "cpu_s": 0.0, "busy_wall_s": 0.0,
        "call_wall_s": 0.0, "init_cpu_s": 0.0, "init_wall_s": 0.0})  # fmt: skip
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        row = out[data["stage"]]
        row["processes"] += 1
        for key in ("calls", "items", "cpu_s", "busy_wall_s", "call_wall_s", "init_cpu_s",
                    "init_wall_s"):  # fmt: skip
            row[key] += data[key]
        row["cpu_s"] += data["init_cpu_s"]
    return {stage: {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            for stage, row in out.items()}  # fmt: skip


def intervals(directory: Path, stage: str) -> list[tuple[float, float]]:
    """(first call start, last call end) of each process that ran ``stage``."""
    out = []
    for path in sorted(directory.glob(f"{stage}.*.json")):
        data = json.loads(path.read_text())
        if data["first_start"] is not None and data["last_end"] is not None:
            out.append((float(data["first_start"]), float(data["last_end"])))
    return out
