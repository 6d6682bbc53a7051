"""The catalog: which stages, pools and pipelines a runtime knows. Plain, picklable data.

Stages are named by import path (``"package.module:factory"``) so any Ray worker process can build
them: a factory is a class or function called with the process :class:`~ingest_ray.config.Settings`
that returns a :class:`~ingest_ray.stages.base.Stage`. Users extend the catalog with their own
stages and pipelines (see the README) and hand it to the runtime.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

from ingest_ray.errors import ConfigurationError
from ingest_ray.pipelines.spec import Pipeline, Resources

#: pools that count as accelerated even without a GPU or custom resource (MinerU's work is what
#: GPUs are for)
ACCELERATED_POOLS = frozenset({"mineru"})


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """An actor pool: its resources, size bounds and concurrency budget.

    ``max_in_flight`` is the pool's budget: how many batches may run at once across its actors
    (the Dispatcher never dispatches beyond it). ``batch_size`` caps jobs per call. An
    :attr:`accelerated` pool spreads its backlog: a call takes its share of the ready jobs over
    the pool's call slots (at most ``batch_size``), so no slot idles while another holds a
    batch.

    ``coalesce`` (on by default) is adaptive batching for the other pools that batch: while
    each of the pool's actors already runs a call with a partial batch, jobs that would form
    another partial batch wait for one of those calls to return and go together in the next
    call. Full batches still use the whole budget. Under light load every job still goes out at
    once (an idle actor takes a batch of one); under load the batches grow with the backlog
    instead of the calls multiplying, and each call costs the Dispatcher, Ray and the actor
    the same whatever its size.

    ``nice`` (0-19) lowers the CPU priority of the pool's actor processes on their node: it is
    added to the niceness of every thread (Ray runs its workers' calls at 15, so 4 or more
    reaches the lowest, 19). A pool whose work can wait (after the accelerator) yields the cores
    it shares to the pools that feed the accelerator. It only matters while the node's cores
    are all busy.
    """

    name: str
    resources: Resources = field(default_factory=Resources)
    min_size: int = 1
    max_size: int = 1
    max_in_flight: int = 4
    batch_size: int = 1
    actor_concurrency: int = 4
    coalesce: bool = True
    nice: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ValueError(f"pool {self.name}: need 0 <= min_size <= max_size, max_size >= 1")
        if self.max_in_flight < 1 or self.batch_size < 1:
            raise ValueError(f"pool {self.name}: max_in_flight and batch_size must be >= 1")
        if not 0 <= self.nice <= 19:
            raise ValueError(f"pool {self.name}: nice must be between 0 and 19")

    @property
    def accelerated(self) -> bool:
        """Whether its actors hold an accelerator (a GPU or a custom resource; MinerU's pool
        always counts as one)."""
        res = self.resources
        return res.num_gpus > 0 or bool(res.custom) or self.name in ACCELERATED_POOLS

    def coalesces(self) -> bool:
        """Whether partial batches wait for a busy actor (see the class docstring)."""
        return self.coalesce and self.batch_size > 1 and not self.accelerated

    def partial_slots(self, budget: int) -> int:
        """Calls with a partial batch the pool runs at once under ``budget``: one per actor."""
        return max(1, -(-budget // self.actor_concurrency))


@dataclass
class Catalog:
    """Stages (name -> import path), pools and pipelines of one runtime."""

    stages: dict[str, str] = field(default_factory=dict)
    pools: dict[str, PoolSpec] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)

    def register_stage(self, name: str, factory: str, pool: PoolSpec | None = None) -> None:
        """Add (or replace) a stage implementation, with the pool that runs it."""
        if ":" not in factory:
            raise ConfigurationError(f"stage factory must be 'module:attr', got {factory!r}")
        self.stages[name] = factory
        self.pools.setdefault(name, pool or PoolSpec(name=name))
        if pool is not None:
            self.pools[pool.name] = pool

    def register_pool(self, pool: PoolSpec) -> None:
        """Add or replace a pool."""
        self.pools[pool.name] = pool

    def register_pipeline(self, pipeline: Pipeline) -> None:
        """Add or replace a pipeline; every stage and pool it uses must be known."""
        for spec in pipeline.stages:
            if spec.stage not in self.stages:
                raise ConfigurationError(f"pipeline {pipeline.name}: unknown stage {spec.stage!r}")
            if spec.pool_name not in self.pools:
                self.pools[spec.pool_name] = PoolSpec(name=spec.pool_name)
        self.pipelines[pipeline.name] = pipeline

    def pipeline(self, name: str) -> Pipeline:
        """The pipeline called ``name``."""
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines))
            raise ConfigurationError(f"unknown pipeline {name!r} (known: {known})") from None

    def with_pool(self, name: str, **changes: Any) -> Catalog:
        """A copy with one pool's settings changed (handy in tests and benchmarks)."""
        pools = {**self.pools, name: replace(self.pools[name], **changes)}
        return Catalog(dict(self.stages), pools, dict(self.pipelines))


def load_factory(path: str) -> Any:
    """Import ``module:attr``."""
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import stage factory {path!r}: {exc}") from exc
