"""Scripted twins of a catalog's pipelines, for volume in cluster tests.

:func:`register_scripted_twins` adds, for every pipeline ``P``, a pipeline ``P_scripted`` whose
stages are :class:`~ingest_ray.testing.ScriptedStage` (named ``<stage>_scripted``) running in
the *same pools* as ``P``'s real stages: they ask for the same resources and land on the same
nodes, while the request's metadata scripts how long each takes or how it fails (see
``ScriptedStage``). Real and scripted jobs then share one runtime, one set of actors and one
node-loss event.
"""

from __future__ import annotations

from dataclasses import replace

from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.pipelines.spec import Pipeline

SCRIPTED = "ingest_ray.testing:ScriptedStage"
SUFFIX = "_scripted"


def register_scripted_twins(catalog: Catalog) -> None:
    """An ``INGEST_RAY_PLUGINS`` entry point: add ``P_scripted`` for each pipeline ``P``."""
    for pipeline in list(catalog.pipelines.values()):
        if pipeline.name.endswith(SUFFIX):
            continue
        stages = []
        for spec in pipeline.stages:
            twin = f"{spec.stage}{SUFFIX}"
            catalog.stages[twin] = SCRIPTED
            stages.append(replace(spec, stage=twin, pool=spec.pool_name))
        mapping = f"{pipeline.mapping_after}{SUFFIX}" if pipeline.mapping_after else None
        catalog.register_pipeline(
            Pipeline(f"{pipeline.name}{SUFFIX}", tuple(stages),
                     f"{pipeline.description} (scripted)", mapping_after=mapping)
        )  # fmt: skip
