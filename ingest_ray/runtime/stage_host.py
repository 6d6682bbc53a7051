"""Runs stages inside one process: builds each stage once, applies the call timeout, and turns
every outcome into a picklable :class:`~ingest_ray.runtime.work.StageResult`. No Ray here; the
Ray actor in ``pools.py`` is a thin shell around it."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ingest_ray.adapters.ratelimit import reserved_tokens
from ingest_ray.config import Settings
from ingest_ray.errors import ConfigurationError, IngestError
from ingest_ray.pipelines.catalog import load_factory
from ingest_ray.runtime.work import StageFailure, StageResult
from ingest_ray.stages.base import CancelToken, Stage, StageInput, StageOutput

log = logging.getLogger(__name__)

#: Cancellations remembered for jobs whose call has not started here yet.
_EARLY_CANCELS = 10_000


class StageHost:
    """Stage instances of one process, built from factory paths (on :meth:`warm` or on first
    use), reused across calls."""

    def __init__(self, factories: Mapping[str, str], settings: Settings) -> None:
        self._factories = dict(factories)
        self._settings = settings
        self._stages: dict[str, Stage] = {}
        self._tokens: dict[str, CancelToken] = {}
        self._early: OrderedDict[str, None] = OrderedDict()
        self.calls = 0

    def warm(self) -> dict[str, str]:
        """Build every stage now (a pool's actor does it as it starts, so an actor started
        ahead of its work, as an accelerator pool's look-ahead does, has loaded its models
        by the time the work comes). A stage that fails to build is left for its first call,
        which fails the way it would have; answers those failures by stage."""
        failed: dict[str, str] = {}
        for name in self._factories:
            try:
                self.stage(name)
            except Exception as exc:  # the call that needs it reports it, as a StageFailure
                failed[name] = f"{type(exc).__name__}: {exc}"
                log.warning("stage %s could not be built at start (tried again at its first "
                            "call): %s", name, failed[name])  # fmt: skip
        return failed

    def stage(self, name: str) -> Stage:
        """The instance for ``name`` (built on first use: models load once per process)."""
        stage = self._stages.get(name)
        if stage is None:
            if name not in self._factories:
                raise ConfigurationError(f"no stage called {name!r} in this pool")
            stage = build_stage(self._factories[name], self._settings, name)
            self._stages[name] = stage
        return stage

    async def run(
        self, name: str, items: Sequence[StageInput], timeout_s: float
    ) -> list[StageResult]:
        """Run one batch; never raises: failures come back as :class:`StageFailure` values.
        Each item carries a :class:`CancelToken` that :meth:`cancel` sets."""
        self.calls += 1
        items = [replace(item, cancel=self._token(item.job_id)) for item in items]
        try:
            return await self._run(name, items, timeout_s)
        finally:
            for item in items:
                self._tokens.pop(item.job_id, None)

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Mark jobs cancelled: running stages see it at their next check."""
        for job_id in job_ids:
            token = self._tokens.get(job_id)
            if token is not None:
                token.cancel()
            else:  # the call may not have started yet
                self._early[job_id] = None
                while len(self._early) > _EARLY_CANCELS:
                    self._early.popitem(last=False)

    async def compensate(self, name: str, items: Sequence[StageInput]) -> None:
        """Take back a stage's side effects for cancelled jobs (stages without a
        ``compensate`` method have none)."""
        hook = getattr(self.stage(name), "compensate", None)
        if hook is not None:
            await hook(list(items))

    def _token(self, job_id: str) -> CancelToken:
        token = self._tokens[job_id] = CancelToken()
        if job_id in self._early:
            del self._early[job_id]
            token.cancel()
        return token

    async def _run(
        self, name: str, items: Sequence[StageInput], timeout_s: float
    ) -> list[StageResult]:
        try:
            stage = self.stage(name)
            if len(items) == 1 and stage.batch_size <= 1:
                coro: Any = self._one(stage, items[0])
            else:
                coro = stage.run_batch(items)
            # the tokens the Dispatcher took for these tries: the stage's first calls spend them
            with reserved_tokens(source for item in items for source in item.reserved):
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


def build_stage(path: str, settings: Settings, name: str) -> Stage:
    """Build the stage at import path ``path`` (``module:factory``)."""
    return _build(load_factory(path), settings, name)


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
