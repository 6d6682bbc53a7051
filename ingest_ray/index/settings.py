"""Settings of the search index: which backend, where it lives, how hybrid results are fused.

``index_uri`` names both at once, so one setting serves a laptop and a cluster:
``postgresql://...`` is pgvector (the cluster default: every node writes to one database), a path,
``file://`` URL or ``s3://bucket/prefix`` is LanceDB there (object storage makes it reachable
from every node; the store must support conditional writes, as S3, MinIO and Ceph do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from platformdirs import user_state_path
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

IndexBackend = Literal["lancedb", "pgvector"]

#: table and column names are interpolated into SQL/filters, so they must be plain identifiers
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


def _default_lancedb_dir() -> Path:
    return user_state_path("ingest-ray") / "index"


class IndexSettings(BaseSettings):
    """Where chunks and entity mentions are indexed (``INGEST_RAY_INDEX_*`` and friends)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_RAY_", extra="ignore", frozen=True)

    #: where the index lives, for either backend (see the module docstring); when unset,
    #: ``index_backend`` with ``lancedb_dir`` or ``postgres_dsn`` decide
    index_uri: str | None = Field(default=None, min_length=1)
    #: LanceDB ``storage_options`` for object storage (e.g. ``{"region": "eu-west-1"}``); the
    #: AWS_* variables are read anyway, and an ``http://`` endpoint turns on ``allow_http``
    index_storage_options: dict[str, str] = Field(default_factory=dict)
    #: "lancedb" is embedded (a directory, no server); "pgvector" needs PostgreSQL + pgvector
    index_backend: IndexBackend = "lancedb"
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
    #: LanceDB: how stale an open table may be before it looks for other processes' commits
    #: (0: check on every call, so every node sees the others' writes; None: never)
    lancedb_read_consistency_s: float | None = Field(default=0.0, ge=0)
    #: LanceDB: compact and refresh the full-text index after this many writes of one process
    lancedb_optimize_every: int = Field(default=200, ge=0)

    @model_validator(mode="after")
    def _uri_agrees_with_backend(self) -> IndexSettings:
        if self.index_uri is None or "index_backend" not in self.model_fields_set:
            return self
        if uri_backend(self.index_uri) != self.index_backend:
            raise ValueError(
                f"index_uri {self.index_uri!r} is a {uri_backend(self.index_uri)} index but "
                f"index_backend is {self.index_backend!r}; set one of them"
            )
        return self

    @property
    def backend(self) -> IndexBackend:
        """The backend in use: the one ``index_uri`` names, else ``index_backend``."""
        return uri_backend(self.index_uri) if self.index_uri else self.index_backend

    @property
    def dsn(self) -> str:
        """The PostgreSQL connection string of the pgvector backend."""
        if self.index_uri and self.backend == "pgvector":
            return self.index_uri
        return self.postgres_dsn

    @property
    def lancedb_uri(self) -> str:
        """Where LanceDB keeps its tables: a local directory or an object-storage URI."""
        if not self.index_uri or self.backend != "lancedb":
            return str(self.lancedb_dir)
        parts = urlsplit(self.index_uri)
        if parts.scheme == "file":
            return unquote(parts.path)
        if parts.scheme == "":
            return str(Path(self.index_uri).expanduser())
        return self.index_uri

    @property
    def lancedb_is_local(self) -> bool:
        """Whether the LanceDB tables are in a local (or mounted) directory."""
        return "://" not in self.lancedb_uri


def uri_backend(uri: str) -> IndexBackend:
    """``pgvector`` for ``postgresql://``/``postgres://`` URIs, else ``lancedb``."""
    return "pgvector" if urlsplit(uri).scheme.lower() in ("postgresql", "postgres") else "lancedb"
