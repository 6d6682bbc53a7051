"""A pool's actor builds its stages as it starts (``StageHost.warm``): the models are loaded when
the first call comes, and a stage that cannot be built fails its calls as before."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.runtime.stage_host import StageHost
from ingest_ray.runtime.work import StageFailure, StageResult
from ingest_ray.stages.base import StageInput, StageOutput, run_each

BUILT: list[str] = []


class Counted:
    """Counts its constructions."""

    name = "counted"
    batch_size = 1

    def __init__(self) -> None:
        BUILT.append(self.name)

    async def run(self, item: StageInput) -> StageOutput:
        return StageOutput(data={"built": len(BUILT)})

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        return await run_each(self.run, items)

    async def aclose(self) -> None:
        return None


def broken() -> Counted:
    """A factory whose model is missing."""
    raise FileNotFoundError("no weights in /models")


def _item(stage: str) -> list[StageInput]:
    return [
        StageInput("j", "t", "d", "p", stage, 1, DocumentSource(kind=SourceKind.TEXT, value="x"))
    ]


def test_warm_builds_every_stage_once_and_leaves_a_broken_one_to_its_first_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    BUILT.clear()
    host = StageHost({"counted": f"{__name__}:Counted", "broken": f"{__name__}:broken"}, Settings())
    with caplog.at_level(logging.WARNING, logger="ingest_ray.runtime.stage_host"):
        failed = host.warm()
    assert BUILT == ["counted"]  # built before any call
    assert failed == {"broken": "FileNotFoundError: no weights in /models"}
    assert "broken could not be built at start" in caplog.text

    async def main() -> tuple[list[StageResult], list[StageResult]]:
        return await host.run("counted", _item("counted"), 5), await host.run(
            "broken", _item("broken"), 5
        )

    (ok,), (bad,) = asyncio.run(main())
    assert isinstance(ok, StageOutput) and ok.data == {"built": 1}  # not built again
    assert isinstance(bad, StageFailure) and "no weights" in bad.message
