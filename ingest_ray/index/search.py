"""Entry points for callers outside the pipeline (the CLI, the job API): build the configured
sink, embed the query, search; or look documents up by entity."""

from __future__ import annotations

from ingest_ray.index.base import EntityHit, IndexSink, QueryEmbedder, SearchHit
from ingest_ray.index.entities import normalize_entity
from ingest_ray.index.settings import IndexSettings
from ingest_ray.text.settings import TextSettings


def build_sink(settings: IndexSettings) -> IndexSink:
    """The sink ``settings.backend`` names; nothing connects until its first call."""
    if settings.backend == "pgvector":
        from ingest_ray.index.pgvector_sink import PgVectorSink  # noqa: PLC0415 - optional backend

        return PgVectorSink(settings)
    from ingest_ray.index.lancedb_sink import LanceDbSink  # noqa: PLC0415 - optional backend

    return LanceDbSink(settings)


def query_embedder(text_settings: TextSettings | None = None) -> QueryEmbedder:
    """The process-wide embedder the pipeline's ``embed`` stage uses (same model, same space)."""
    from ingest_ray.text.embedder import embedder_from_settings  # noqa: PLC0415 - loads a model

    return embedder_from_settings(text_settings or TextSettings())


def run_search(
    settings: IndexSettings,
    query: str,
    k: int = 10,
    tenant: str | None = None,
    *,
    text_settings: TextSettings | None = None,
    embedder: QueryEmbedder | None = None,
) -> list[SearchHit]:
    """Hybrid search for ``query``: the top ``k`` chunks (optionally of one tenant)."""
    vector = None
    if query.strip():
        vector = (embedder or query_embedder(text_settings)).embed([query])[0]
    sink = build_sink(settings)
    try:
        return sink.search(query, vector, k=k, tenant_id=tenant)
    finally:
        sink.close()


def run_entity_search(
    settings: IndexSettings, entity: str, tenant: str | None = None, limit: int = 100
) -> list[EntityHit]:
    """Documents linked to ``entity`` (an ORCID, ROR id, DOI or OpenAlex id, bare or as a URL).

    Raises :class:`~ingest_ray.index.errors.InvalidEntityError` for anything else.
    """
    entity_id = normalize_entity(entity)
    sink = build_sink(settings)
    try:
        return sink.find_by_entity(entity_id, tenant_id=tenant, limit=limit)
    finally:
        sink.close()
