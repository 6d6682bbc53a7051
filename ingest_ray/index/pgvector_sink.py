"""The server-backed index: PostgreSQL with pgvector (psycopg 3).

One table of chunks with a ``vector(dim)`` column under an HNSW index (cosine) and a generated
``tsvector`` column under a GIN index; one table of entity mentions. Writes are
``INSERT ... ON CONFLICT DO UPDATE`` on the primary key, and a replaced document's stale chunks are
deleted in the same transaction, so readers never see it half-written. The schema is created on
first use, under an advisory lock so concurrent actors do not race each other's DDL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.rows import dict_row

from ingest_ray.index.base import (
    META_CHUNK_ID,
    CandidateRow,
    DocumentChunks,
    EntityHit,
    EntityMention,
    FloatArray,
    SearchHit,
)
from ingest_ray.index.errors import IndexSchemaError, IndexUnavailableError
from ingest_ray.index.fusion import fuse_hits
from ingest_ray.index.rows import (
    candidates,
    check_dims,
    check_query_vector,
    dedupe_documents,
    dedupe_mentions,
    plain_documents,
    plain_mentions,
)
from ingest_ray.index.settings import IndexSettings

_SCHEMA_LOCK = 0x1A9E57  # advisory lock id serialising DDL across processes

_DDL: LiteralString = """
CREATE TABLE IF NOT EXISTS {chunks} (
    tenant_id text NOT NULL,
    doc_key text NOT NULL,
    chunk_id text NOT NULL,
    text text NOT NULL DEFAULT '',
    title text,
    doi text,
    job_id text,
    page_start integer,
    page_end integer,
    section_path text[] NOT NULL DEFAULT '{{}}',
    vector vector({dim}) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector({config}::regconfig, text)) STORED,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, doc_key, chunk_id)
);
CREATE INDEX IF NOT EXISTS {tsv_index} ON {chunks} USING gin (tsv);
CREATE INDEX IF NOT EXISTS {hnsw_index} ON {chunks} USING hnsw (vector vector_cosine_ops);
CREATE TABLE IF NOT EXISTS {mentions} (
    entity_id text NOT NULL,
    entity_type text NOT NULL,
    doc_key text NOT NULL,
    tenant_id text NOT NULL,
    label text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, doc_key, entity_id)
);
CREATE INDEX IF NOT EXISTS {entity_index} ON {mentions} (entity_id, tenant_id);
"""

_UPSERT_CHUNK: LiteralString = """
INSERT INTO {chunks} (tenant_id, doc_key, chunk_id, text, title, doi, job_id,
                      page_start, page_end, section_path, vector)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, doc_key, chunk_id) DO UPDATE SET
    text = EXCLUDED.text, title = EXCLUDED.title, doi = EXCLUDED.doi, job_id = EXCLUDED.job_id,
    page_start = EXCLUDED.page_start, page_end = EXCLUDED.page_end,
    section_path = EXCLUDED.section_path, vector = EXCLUDED.vector, updated_at = now()
"""

_SELECT_CANDIDATE: LiteralString = (
    "SELECT tenant_id, doc_key, chunk_id, text, title, doi, page_start, page_end, section_path"
)

_VECTOR_LEG: LiteralString = (
    _SELECT_CANDIDATE + " FROM {chunks} WHERE ({tenant} IS NULL OR tenant_id = {tenant})"
    " ORDER BY vector <=> {vector} LIMIT {limit}"
)

#: plainto_tsquery ANDs the words; OR them so a long query still matches, ranked by coverage
_TEXT_LEG: LiteralString = (
    _SELECT_CANDIDATE + ", ts_rank_cd(tsv, q.query) AS rank FROM {chunks}, "
    "(SELECT replace(plainto_tsquery({config}::regconfig, {text})::text, ' & ', ' | ')::tsquery"
    " AS query) AS q WHERE tsv @@ q.query AND ({tenant} IS NULL OR tenant_id = {tenant})"
    " ORDER BY rank DESC, doc_key, chunk_id LIMIT {limit}"
)

_FIND_ENTITY: LiteralString = """
SELECT m.entity_id, m.entity_type, m.label, m.tenant_id, m.doc_key, t.title, t.doi
FROM {mentions} AS m
LEFT JOIN LATERAL (
    SELECT c.title, c.doi FROM {chunks} AS c
    WHERE c.tenant_id = m.tenant_id AND c.doc_key = m.doc_key
    ORDER BY (c.chunk_id = 'meta') DESC LIMIT 1
) AS t ON true
WHERE m.entity_id = %s AND (%s::text IS NULL OR m.tenant_id = %s)
ORDER BY m.tenant_id, m.doc_key LIMIT %s
"""


class PgVectorSink:
    """:class:`~ingest_ray.index.base.IndexSink` on PostgreSQL + pgvector; connects on first
    use and reconnects after a connection error."""

    backend = "pgvector"

    def __init__(self, settings: IndexSettings) -> None:
        self.settings = settings
        self.dim = settings.embedding_dim
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._names = {
            "chunks": sql.Identifier(settings.chunks_table),
            "mentions": sql.Identifier(settings.entities_table),
            "tsv_index": sql.Identifier(f"{settings.chunks_table}_tsv_idx"),
            "hnsw_index": sql.Identifier(f"{settings.chunks_table}_hnsw_idx"),
            "entity_index": sql.Identifier(f"{settings.entities_table}_entity_idx"),
            "config": sql.Literal(settings.postgres_text_config),
            "dim": sql.Literal(self.dim),
        }

    def _sql(self, template: LiteralString, **extra: sql.Composable) -> sql.Composed:
        return sql.SQL(template).format(**self._names, **extra)

    # --- connection -------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection, inside one transaction; errors become index errors."""
        with self._lock:
            try:
                conn = self._connect()
                with conn.transaction():
                    yield conn
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                raise IndexUnavailableError(f"PostgreSQL index: {exc}") from exc
            except psycopg.Error as exc:
                raise IndexSchemaError(f"PostgreSQL index: {exc}") from exc

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = psycopg.connect(
            self.settings.dsn,
            autocommit=True,
            connect_timeout=max(1, round(self.settings.postgres_connect_timeout_s)),
        )
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            found = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
            if found is None:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(self._sql(_DDL))
            row = conn.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass"
                " AND attname = 'vector'",
                (self.settings.chunks_table,),
            ).fetchone()
        if row is not None and row[0] != self.dim:
            raise IndexSchemaError(
                f"table {self.settings.chunks_table} holds vectors of dim {row[0]}, "
                f"settings say {self.dim}"
            )

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    # --- writes -----------------------------------------------------------------------------

    def upsert(self, docs: Sequence[DocumentChunks]) -> int:
        """Upsert every chunk and delete replaced documents' stale ones, in one transaction."""
        docs = plain_documents(dedupe_documents(docs))
        docs.sort(key=lambda d: (d.tenant_id, d.doc_key))
        check_dims(docs, self.dim)
        rows = [
            (
                doc.tenant_id,
                doc.doc_key,
                chunk.chunk_id,
                chunk.text,
                doc.title,
                doc.doi,
                doc.job_id,
                chunk.page_start,
                chunk.page_end,
                list(chunk.section_path),
                np.asarray(vector, dtype=np.float32),
            )
            for doc in docs
            for chunk, vector in zip(doc.chunks, doc.vectors, strict=True)
        ]
        delete = self._sql(
            "DELETE FROM {chunks} WHERE tenant_id = %s AND doc_key = %s"
            " AND chunk_id <> ALL(%s) AND chunk_id <> %s"
        )
        with self._session() as conn, conn.cursor() as cur:
            for doc in docs:
                if doc.replace:
                    ids = [chunk.chunk_id for chunk in doc.chunks]
                    cur.execute(delete, (doc.tenant_id, doc.doc_key, ids, META_CHUNK_ID))
            if rows:
                cur.executemany(self._sql(_UPSERT_CHUNK), rows)
        return len(rows)

    def delete_document(self, tenant_id: str, doc_key: str) -> int:
        """Remove the document's chunks and mentions."""
        key = (tenant_id, doc_key)
        with self._session() as conn:
            chunks = self._sql("DELETE FROM {chunks} WHERE tenant_id = %s AND doc_key = %s")
            mentions = self._sql("DELETE FROM {mentions} WHERE tenant_id = %s AND doc_key = %s")
            removed = conn.execute(chunks, key).rowcount
            conn.execute(mentions, key)
        return removed

    def upsert_mentions(
        self, tenant_id: str, doc_key: str, mentions: Sequence[EntityMention]
    ) -> int:
        """Replace the document's mentions in one transaction."""
        mentions = sorted(plain_mentions(dedupe_mentions(mentions)), key=lambda m: m.entity_id)
        delete = self._sql(
            "DELETE FROM {mentions} WHERE tenant_id = %s AND doc_key = %s AND entity_id <> ALL(%s)"
        )
        insert = self._sql(
            "INSERT INTO {mentions} (entity_id, entity_type, doc_key, tenant_id, label)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, doc_key, entity_id) DO UPDATE"
            " SET entity_type = EXCLUDED.entity_type, label = EXCLUDED.label, updated_at = now()"
        )
        with self._session() as conn, conn.cursor() as cur:
            cur.execute(delete, (tenant_id, doc_key, [m.entity_id for m in mentions]))
            if mentions:
                cur.executemany(
                    insert,
                    [(m.entity_id, m.entity_type, doc_key, tenant_id, m.label) for m in mentions],
                )
        return len(mentions)

    def optimize(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum and the HNSW/GIN indexes keep up by themselves."""

    # --- reads ------------------------------------------------------------------------------

    def count(self, *, tenant_id: str | None = None, doc_key: str | None = None) -> int:
        """Number of stored chunks matching the filters."""
        query = self._sql(
            "SELECT count(*) FROM {chunks} WHERE (%s::text IS NULL OR tenant_id = %s)"
            " AND (%s::text IS NULL OR doc_key = %s)"
        )
        with self._session() as conn:
            row = conn.execute(query, (tenant_id, tenant_id, doc_key, doc_key)).fetchone()
        return int(row[0]) if row else 0

    def search(
        self,
        query_text: str,
        query_vector: FloatArray | None,
        k: int = 10,
        tenant_id: str | None = None,
    ) -> list[SearchHit]:
        """Vector (cosine, HNSW) and full-text (``ts_rank_cd``) legs, fused by reciprocal rank."""
        if k < 1:
            return []
        limit = k * self.settings.candidate_factor
        args = {"tenant": sql.Literal(tenant_id), "limit": sql.Literal(limit)}
        vector_rows: list[CandidateRow] = []
        text_rows: list[CandidateRow] = []
        with self._session() as conn, conn.cursor(row_factory=dict_row) as cur:
            if query_vector is not None:
                vector = check_query_vector(query_vector, self.dim)
                # with a tenant filter, let HNSW keep scanning until enough rows pass it
                cur.execute(
                    "SELECT set_config('hnsw.ef_search', %s, true)", (str(min(limit, 1000)),)
                )
                cur.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                cur.execute(self._sql(_VECTOR_LEG, vector=sql.Placeholder(), **args), (vector,))
                vector_rows = candidates(cur.fetchall())
            if query_text.strip():
                cur.execute(self._sql(_TEXT_LEG, text=sql.Literal(query_text), **args))
                text_rows = candidates(cur.fetchall())
        return fuse_hits(
            vector_rows, text_rows, query_text=query_text, k=k, rrf_k=self.settings.rrf_k
        )

    def find_by_entity(
        self, entity_id: str, tenant_id: str | None = None, limit: int = 100
    ) -> list[EntityHit]:
        """Documents mentioning the entity, with the title and DOI of their indexed chunks."""
        with self._session() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql(_FIND_ENTITY), (entity_id, tenant_id, tenant_id, limit))
            rows = cur.fetchall()
        return [EntityHit(**row) for row in rows]
