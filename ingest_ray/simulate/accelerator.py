"""A simulated accelerator stage, for placement and scale-out runs without GPUs.

:class:`SimulatedAccelerator` stands for a GPU parser: its pool's actors each ask for one unit
of a custom resource (``accelerator`` by default; give it to the nodes that "have the device"),
and a call holds the actor's device for ``page_s`` seconds per page of each document (the
request's ``metadata["pages"]``, default 1), one document at a time. Throughput is then bounded
by how many nodes carry the resource, as it would be by GPUs. With ``page_s = 0`` and no
resource it is a no-op stage (the Dispatcher's ceiling benchmark uses it so).

Every output records the node and actor process that did the work, so a run can be checked
against the cluster's layout from the ledger alone.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

import ray

from ingest_ray.config import Settings
from ingest_ray.pipelines.catalog import Catalog, PoolSpec
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.retry import RetryPolicy
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput

FACTORY = "ingest_ray.simulate.accelerator:SimulatedAccelerator"
PIPELINE = "simulated"
#: ``Settings.sections`` area read by the stage where it runs
SECTION = "simulate"


def _node_id() -> str:
    try:
        return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""
    except Exception:  # outside Ray: no node to name
        return ""


class SimulatedAccelerator(BaseStage):
    """Sleeps ``page_s`` per page while holding this process's one device; a batch runs its
    documents one after another, as one device would."""

    name: ClassVar[str] = "accelerate"
    batch_size: ClassVar[int] = 16

    def __init__(self, settings: Settings, name: str) -> None:
        self.stage = name
        self.page_s = float(settings.sections.get(SECTION, {}).get("page_s", 0.05))
        self._device: asyncio.Lock | None = None
        self._node = _node_id()

    async def run(self, item: StageInput) -> StageOutput:
        """Hold the device for this document's pages."""
        pages = max(1, int(item.metadata.get("pages", 1)))
        self._device = self._device or asyncio.Lock()
        async with self._device:
            if self.page_s > 0:
                await asyncio.sleep(self.page_s * pages)
        item.check_cancelled()
        return StageOutput(data={"pages": pages, "node_id": self._node, "pid": os.getpid()})


def accelerator_pool(
    *, resource: str | None = "accelerator", max_size: int = 8, num_cpus: float = 0.25,
    name: str = "accelerate", actor_concurrency: int = 2, batch_size: int = 1,
) -> PoolSpec:  # fmt: skip
    """The pool: one unit of ``resource`` per actor, up to ``max_size`` actors (as many as the
    cluster can place), two calls per actor so the next document is queued at the device."""
    custom = {resource: 1.0} if resource else {}
    return PoolSpec(
        name, Resources(num_cpus=num_cpus, custom=custom), min_size=1, max_size=max_size,
        max_in_flight=max_size * actor_concurrency, batch_size=batch_size,
        actor_concurrency=actor_concurrency,
    )  # fmt: skip


def register_simulated(catalog: Catalog, pool: PoolSpec | None = None, **spec: Any) -> None:
    """Add the stage ``accelerate`` (in ``pool``) and the one-stage pipeline ``simulated``."""
    chosen = pool or accelerator_pool()
    catalog.register_stage("accelerate", FACTORY, chosen)
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.2, max_delay_s=2.0)
    stage = StageSpec("accelerate", pool=chosen.name, retry=retry, **{"timeout_s": 120, **spec})
    catalog.register_pipeline(Pipeline(PIPELINE, (stage,), "a simulated accelerator stage"))


def register(catalog: Catalog) -> None:
    """An ``INGEST_RAY_PLUGINS`` entry point: the ``simulated`` pipeline with default pool."""
    register_simulated(catalog)
