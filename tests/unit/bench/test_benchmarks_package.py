"""The benchmarks live in the checkout, outside the package: the CLI finds them from anywhere,
and the stage wrapper of ``bench pdf`` measures without changing what a stage does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from ingest_ray.errors import IngestError, PermanentError
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput

CHECKOUT = Path(__file__).resolve().parents[3]


def test_bench_commands_import_the_checkout_benchmarks_from_any_directory(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from ingest_ray.commands.bench import load_benchmarks\n"
        "load_benchmarks()\n"
        "import benchmarks.embedding, benchmarks.pdf.timing, benchmarks.accel.stage\n"
        "import benchmarks.orchestration.stages\n"
        "print(benchmarks.ROOT)\n"
        "print(os.environ['PYTHONPATH'].split(os.pathsep)[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    root, exported = out.stdout.split()
    assert Path(root) == CHECKOUT == Path(exported)


class Counting(BaseStage):
    name: ClassVar[str] = "counting"
    batch_size: ClassVar[int] = 4

    async def run(self, item: StageInput) -> StageOutput:
        if item.doc_key == "bad":
            raise PermanentError("bad document")
        await asyncio.sleep(0.01)
        return StageOutput(data={"doc": item.doc_key})

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        await asyncio.sleep(0.02)
        return [StageOutput(data={"doc": i.doc_key}) for i in items]


def _item(doc: str) -> StageInput:
    source = DocumentSource(kind=SourceKind.TEXT, value=doc)
    return StageInput("j", "t", doc, "p", "counting", 1, source)


def test_timed_stage_records_calls_and_counts_overlapping_calls_once(tmp_path: Path) -> None:
    from benchmarks.pdf.timing import Recorder, TimedStage, read_timings

    recorder = Recorder(tmp_path, "counting")
    stage = TimedStage(recorder.build(Counting), recorder)
    assert (stage.name, stage.batch_size) == ("counting", 4)

    async def work() -> None:
        await asyncio.gather(*(stage.run(_item(f"d{i}")) for i in range(5)))
        out = await stage.run_batch([_item("a"), _item("b")])
        assert [o.data for o in out if isinstance(o, StageOutput)] == [{"doc": "a"}, {"doc": "b"}]
        try:
            await stage.run(_item("bad"))
        except PermanentError:
            pass
        else:
            raise AssertionError("the stage's error must pass through")

    asyncio.run(work())
    [row] = read_timings(tmp_path).values()
    assert (row["processes"], row["calls"], row["items"]) == (1, 7, 8)
    assert row["call_wall_s"] > row["busy_wall_s"] > 0  # five calls overlapped
    assert row["busy_wall_s"] < 0.2


def test_machine_info_records_the_hosts_speed_as_the_best_of_its_repeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import common

    ticks = iter([0.0, 0.9, 1.0, 1.4, 2.0, 2.7])  # three repeats: 0.9 s, 0.4 s, 0.7 s
    monkeypatch.setattr(common.time, "process_time", lambda: next(ticks))
    info = common.machine_info([("broker", "local")])
    assert info["cpu_calibration_s"] == 0.4
    assert info["broker"] == "local" and info["cpus"] == os.cpu_count()
