"""The simulation tools: node specs, scripted twins of pipelines, the simulated accelerator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.pools import _factories
from ingest_ray.simulate import accelerator
from ingest_ray.simulate.accelerator import (
    PIPELINE,
    SimulatedAccelerator,
    accelerator_pool,
    register_simulated,
)
from ingest_ray.simulate.pipelines import SCRIPTED, register_scripted_twins
from ingest_ray.simulate.spec import NodeSpec
from ingest_ray.stages.base import StageInput


def _item(job: str, pages: int) -> StageInput:
    return StageInput(
        job_id=job, tenant_id="t", doc_key=job, pipeline=PIPELINE, stage="accelerate", attempt=1,
        source=DocumentSource(kind=SourceKind.TEXT, value=job), metadata={"pages": pages},
    )  # fmt: skip


def test_simulate_node_spec_rejects_what_ray_would_not_take() -> None:
    with pytest.raises(ValidationError):
        NodeSpec(name="", num_cpus=1)
    with pytest.raises(ValidationError):
        NodeSpec(name="n", num_cpus=-1)
    with pytest.raises(ValidationError):
        NodeSpec(name="n", unknown=1)  # type: ignore[call-arg]
    assert NodeSpec(name="gpu", resources={"mineru": 1}).resources == {"mineru": 1.0}


def test_simulate_scripted_twins_share_the_real_pools() -> None:
    catalog = builtin_catalog(Settings(mineru_resource="mineru"))
    register_scripted_twins(catalog)
    assert set(catalog.pipelines) == {"auto", "two_phase", "auto_scripted", "two_phase_scripted"}
    twin = catalog.pipeline("two_phase_scripted")
    real = catalog.pipeline("two_phase")
    assert [s.pool_name for s in twin.stages] == [s.pool_name for s in real.stages]
    assert [s.stage for s in twin.stages] == [f"{s.stage}_scripted" for s in real.stages]
    assert twin.mapping_after == "index_scripted"
    assert catalog.stages["mineru_scripted"] == SCRIPTED
    # one MinerU actor hosts both: it asks for the MinerU resource either way
    assert set(_factories(catalog, "mineru")) == {"mineru", "mineru_scripted"}
    register_scripted_twins(catalog)  # again: no twins of twins
    assert "auto_scripted_scripted" not in catalog.pipelines


def test_simulate_accelerator_holds_its_device_page_by_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held: list[Any] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        held.append(("start", delay))
        await real_sleep(0)
        held.append(("end", delay))

    monkeypatch.setattr(accelerator.asyncio, "sleep", fake_sleep)
    stage = SimulatedAccelerator(Settings(sections={"simulate": {"page_s": 0.5}}), "accelerate")

    async def both() -> list[Any]:
        return list(await asyncio.gather(stage.run(_item("a", 3)), stage.run(_item("b", 1))))

    first, second = asyncio.run(both())
    assert held == [("start", 1.5), ("end", 1.5), ("start", 0.5), ("end", 0.5)]  # one at a time
    assert first.data["pages"] == 3 and second.data["pages"] == 1
    assert isinstance(first.data["node_id"], str)  # empty outside Ray


def test_simulate_accelerator_pool_asks_for_one_device_per_actor() -> None:
    pool = accelerator_pool(resource="accelerator", max_size=6)
    assert pool.resources.custom == {"accelerator": 1.0}
    assert pool.max_in_flight == 12
    assert accelerator_pool(resource=None).resources.custom == {}
    catalog = Catalog()
    register_simulated(catalog, pool)
    assert catalog.pipeline(PIPELINE).stages[0].pool_name == "accelerate"
    assert catalog.pools["accelerate"].max_size == 6
