"""Settings of the search index: which backend, where it lives, how hybrid results are fused."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_state_path
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: table and column names are interpolated into SQL/filters, so they must be plain identifiers
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


def _default_lancedb_dir() -> Path:
    return user_state_path("ingest-ray") / "index"


class IndexSettings(BaseSettings):
    """Where chunks and entity mentions are indexed (``INGEST_RAY_INDEX_*`` and friends)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_RAY_", extra="ignore", frozen=True)

    #: "lancedb" is embedded (a directory, no server); "pgvector" needs PostgreSQL + pgvector
    index_backend: Literal["lancedb", "pgvector"] = "lancedb"
    lancedb_dir: Path = Field(default_factory=_default_lancedb_dir)
    #: libpq connection string, e.g. ``postgresql://user@127.0.0.1:5432/ingest``
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    postgres_connect_timeout_s: float = Field(default=10.0, gt=0)
    #: PostgreSQL text-search configuration of the generated ``tsvector`` column
    postgres_text_config: str = Field(default="english", pattern=_IDENTIFIER)
    chunks_table: str = Field(default="ingest_chunks", pattern=_IDENTIFIER)
    entities_table: str = Field(default="entity_mentions", pattern=_IDENTIFIER)
    #: dimension of the embedding vectors (the default embedder's is 384)
    embedding_dim: int = Field(default=384, ge=1, le=16000)
    #: the constant of reciprocal-rank fusion: score = sum(1 / (rrf_k + rank))
    rrf_k: int = Field(default=60, ge=1)
    #: how many candidates each leg (vector, full text) contributes per requested hit
    candidate_factor: int = Field(default=4, ge=1)
    #: LanceDB: compact and refresh the full-text index after this many writes of one process
    lancedb_optimize_every: int = Field(default=200, ge=0)
