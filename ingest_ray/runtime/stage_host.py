"""Runs stages inside one process: builds each stage once, applies the call timeout, and turns
every outcome into a picklable :class:`~ingest_ray.runtime.work.StageResult`. No Ray here; the
Ray actor in ``pools.py`` is a thin shell around it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ingest_ray.config import Settings
from ingest_ray.errors import ConfigurationError, IngestError
from ingest_ray.pipelines.catalog import load_factory
from ingest_ray.runtime.work import StageFailure, StageResult
from ingest_ray.stages.base import Stage, StageInput, StageOutput


class StageHost:
    """Stage instances of one process, built lazily from factory paths, reused across calls."""

    def __init__(self, factories: Mapping[str, str], settings: Settings) -> None:
        self._factories = dict(factories)
        self._settings = settings
        self._stages: dict[str, Stage] = {}
        self.calls = 0

    def stage(self, name: str) -> Stage:
        """The instance for ``name`` (built on first use: models load once per process)."""
        stage = self._stages.get(name)
        if stage is None:
            if name not in self._factories:
                raise ConfigurationError(f"no stage called {name!r} in this pool")
            stage = _build(load_factory(self._factories[name]), self._settings, name)
            self._stages[name] = stage
        return stage

    async def run(
        self, name: str, items: Sequence[StageInput], timeout_s: float
    ) -> list[StageResult]:
        """Run one batch; never raises: failures come back as :class:`StageFailure` values."""
        self.calls += 1
        try:
            stage = self.stage(name)
            if len(items) == 1 and stage.batch_size <= 1:
                coro: Any = self._one(stage, items[0])
            else:
                coro = stage.run_batch(items)
            results = await asyncio.wait_for(coro, timeout=timeout_s)
        except TimeoutError:
            failure = StageFailure("StageTimeout", f"{name} exceeded {timeout_s:.0f}s", True)
            return [failure] * len(items)
        except Exception as exc:
            # a bug in a stage must fail its batch (and be retried by policy), not the actor
            return [StageFailure.from_error(exc)] * len(items)
        return [_result(r) for r in results]

    @staticmethod
    async def _one(stage: Stage, item: StageInput) -> list[StageOutput | IngestError]:
        try:
            return [await stage.run(item)]
        except IngestError as exc:
            return [exc]

    async def aclose(self) -> None:
        """Close every stage that was built."""
        for stage in self._stages.values():
            await stage.aclose()
        self._stages.clear()


def _build(factory: Any, settings: Settings, name: str) -> Stage:
    """Call a factory with what it asks for: nothing, the settings, or settings and name."""
    arity = len(inspect.signature(factory).parameters)
    stage = factory(*(settings, name)[: min(arity, 2)])
    if not isinstance(stage, Stage):
        raise ConfigurationError(f"{factory!r} did not return a Stage")
    return stage


def _result(value: object) -> StageResult:
    if isinstance(value, StageOutput):
        return value
    if isinstance(value, BaseException):
        return StageFailure.from_error(value)
    return StageFailure("StageContractError", f"stage returned {type(value).__name__}", False)
