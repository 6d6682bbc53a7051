"""The built-in stages, pools and the two pipelines, ``auto`` and ``two_phase``.

``auto``: metadata -> chunk -> embed -> index (the text is already in hand).
``two_phase``: metadata -> meta_index -> pdf_fetch -> mineru -> chunk -> embed -> index: the
metadata is indexed at once, then the PDF is found, parsed and indexed. After ``index`` a
``mapping.events.v1`` event sends the document to the MappingWorker.
"""

from __future__ import annotations

from collections.abc import Mapping

from ingest_ray.config import Settings
from ingest_ray.pipelines.catalog import Catalog, PoolSpec, load_factory
from ingest_ray.pipelines.spec import Pipeline, Resources, StageSpec
from ingest_ray.retry import RetryPolicy

STAGE_FACTORIES: dict[str, str] = {
    "metadata": "ingest_ray.stages.factories:metadata",
    "meta_index": "ingest_ray.stages.factories:meta_index",
    "pdf_fetch": "ingest_ray.stages.factories:pdf_fetch",
    "mineru": "ingest_ray.stages.factories:mineru",
    "chunk": "ingest_ray.stages.factories:chunk",
    "embed": "ingest_ray.stages.factories:embed",
    "index": "ingest_ray.stages.factories:index",
    "mapping": "ingest_ray.stages.factories:mapping",
}

AUTO = ("metadata", "chunk", "embed", "index")
TWO_PHASE = ("metadata", "meta_index", "pdf_fetch", "mineru", "chunk", "embed", "index")

_API_RETRY = RetryPolicy(max_attempts=6, base_delay_s=2.0, max_delay_s=120.0)
_CPU_RETRY = RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=30.0)


def builtin_pools(settings: Settings) -> list[PoolSpec]:
    """Pools with resources that fit the work: I/O-bound stages ask for a fraction of a CPU
    and overlap many calls; MinerU asks for a GPU or a custom resource when configured. The
    CPU-bound pools (chunk, embed; MinerU on its accelerators) take one call per actor and grow
    with their backlog to the CPUs (accelerators) the cluster has (``runtime/sizing.py``); their
    ``max_size`` here is only the floor of that default. The pools after the parser run at
    ``settings.downstream_nice``, so on a shared node the parser and its feed get the cores
    first."""
    mineru = Resources(
        num_cpus=1.0,
        num_gpus=settings.mineru_num_gpus,
        custom={settings.mineru_resource: 1.0} if settings.mineru_resource else {},
    )
    gpus, later = settings.mineru_pool_max, settings.downstream_nice
    return [
        PoolSpec("metadata", Resources(num_cpus=0.25), max_size=4, max_in_flight=32,
                 actor_concurrency=16),
        PoolSpec("meta_index", Resources(num_cpus=0.5), max_size=2, max_in_flight=4, batch_size=16),
        PoolSpec("pdf_fetch", Resources(num_cpus=0.25), max_size=4, max_in_flight=16,
                 actor_concurrency=8),
        PoolSpec("mineru", mineru, max_size=gpus, max_in_flight=2 * gpus, actor_concurrency=2,
                 batch_size=8),
        PoolSpec("chunk", Resources(num_cpus=1.0), max_size=2, max_in_flight=16, batch_size=8,
                 actor_concurrency=1, nice=later),
        PoolSpec("embed", Resources(num_cpus=1.0), max_size=2, max_in_flight=16, batch_size=32,
                 actor_concurrency=1, nice=later),
        PoolSpec("index", Resources(num_cpus=0.5), max_size=1, max_in_flight=2, batch_size=32,
                 nice=later),
        PoolSpec("mapping", Resources(num_cpus=0.25), max_size=2, max_in_flight=4, batch_size=16,
                 nice=later),
    ]  # fmt: skip


def builtin_catalog(settings: Settings, *, factories: Mapping[str, str] | None = None) -> Catalog:
    """The catalog with both built-in pipelines; ``factories`` replaces stage implementations
    (tests run the real pipeline shapes with scripted stages this way)."""
    catalog = Catalog()
    chosen = {**STAGE_FACTORIES, **(factories or {})}
    pools = {p.name: p for p in builtin_pools(settings)}
    for name, factory in chosen.items():
        catalog.register_stage(name, factory, pools.get(name))
    specs = {
        "metadata": StageSpec("metadata", retry=_API_RETRY, timeout_s=120),
        "meta_index": StageSpec("meta_index", retry=_CPU_RETRY, timeout_s=120, compensate=True),
        "pdf_fetch": StageSpec("pdf_fetch", retry=_API_RETRY, timeout_s=300),
        "mineru": StageSpec("mineru", retry=_CPU_RETRY, timeout_s=settings.mineru_timeout_s),
        "chunk": StageSpec("chunk", retry=_CPU_RETRY, timeout_s=120),
        "embed": StageSpec("embed", retry=_CPU_RETRY, timeout_s=600),
        "index": StageSpec("index", retry=_CPU_RETRY, timeout_s=300, compensate=True),
    }
    catalog.register_pipeline(
        Pipeline("auto", tuple(specs[s] for s in AUTO), "text in hand", mapping_after="index")
    )
    catalog.register_pipeline(
        Pipeline("two_phase", tuple(specs[s] for s in TWO_PHASE), "text from a PDF",
                 mapping_after="index")
    )  # fmt: skip
    for plugin in settings.plugins:
        load_factory(plugin)(catalog)
    return catalog
