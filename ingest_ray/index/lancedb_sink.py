"""The embedded default index: LanceDB tables in a local directory or on object storage (``s3://``),
no server.

Chunks live in one table with a fixed-size float32 ``vector`` column and a native full-text
index on ``text``; entity mentions in a second table. Writes are ``merge_insert`` upserts on the
key columns, and the same commit deletes a replaced document's stale chunks
(``when_not_matched_by_source_delete`` scoped to that document), so a reader never sees a
document half-replaced. Rows written since the last :meth:`LanceDbSink.optimize` are still found
by full-text search (LanceDB scans the unindexed part), so the index is refreshed in batches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, BTree
from lancedb.table import Table

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
from ingest_ray.storage.s3 import lance_storage_options

log = logging.getLogger(__name__)

_CHUNK_KEY = ["tenant_id", "doc_key", "chunk_id"]
_MENTION_KEY = ["tenant_id", "doc_key", "entity_id"]
_CANDIDATE_COLUMNS = [
    "tenant_id",
    "doc_key",
    "chunk_id",
    "text",
    "title",
    "doi",
    "page_start",
    "page_end",
    "section_path",
]
_BACKEND_ERRORS = (OSError, RuntimeError, ValueError)


def sql_quote(value: str) -> str:
    """A SQL string literal for LanceDB filters (quotes doubled, so values cannot escape)."""
    return "'" + value.replace("'", "''") + "'"


def _doc_filter(pairs: Iterable[tuple[str, str]]) -> str:
    return " OR ".join(
        f"(tenant_id = {sql_quote(tenant)} AND doc_key = {sql_quote(doc)})" for tenant, doc in pairs
    )


def chunk_schema(dim: int) -> pa.Schema:
    """The Arrow schema of the chunks table."""
    return pa.schema(
        [
            pa.field("tenant_id", pa.string(), nullable=False),
            pa.field("doc_key", pa.string(), nullable=False),
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("title", pa.string()),
            pa.field("doi", pa.string()),
            pa.field("job_id", pa.string()),
            pa.field("page_start", pa.int32()),
            pa.field("page_end", pa.int32()),
            pa.field("section_path", pa.list_(pa.string())),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("updated_at", pa.timestamp("ms", tz="UTC")),
        ]
    )


MENTION_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("doc_key", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("entity_type", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("updated_at", pa.timestamp("ms", tz="UTC")),
    ]
)


class LanceDbSink:
    """:class:`~ingest_ray.index.base.IndexSink` on LanceDB; opens its directory on first use."""

    backend = "lancedb"

    def __init__(self, settings: IndexSettings) -> None:
        self.settings = settings
        self.dim = settings.embedding_dim
        self._lock = threading.Lock()
        self._db: lancedb.DBConnection | None = None
        self._tables: dict[str, Table] = {}
        self._writes = 0

    # --- tables ---------------------------------------------------------------------------

    def _table(self, name: str, schema: pa.Schema, indexes: dict[str, Any]) -> Table:
        with self._lock:
            if name in self._tables:
                return self._tables[name]
            try:
                if self._db is None:
                    self._db = self._connect()
                table = self._open_or_create(self._db, name, schema)
                self._ensure_indexes(table, indexes)
            except _BACKEND_ERRORS as exc:
                raise IndexUnavailableError(f"LanceDB table {name}: {exc}") from exc
            self._tables[name] = table
            return table

    def _connect(self) -> lancedb.DBConnection:
        uri = self.settings.lancedb_uri
        if self.settings.lancedb_is_local:
            Path(uri).mkdir(parents=True, exist_ok=True)
        options = lance_storage_options(uri, self.settings.index_storage_options)
        interval = self.settings.lancedb_read_consistency_s
        return lancedb.connect(
            uri,
            storage_options=options or None,
            read_consistency_interval=None if interval is None else timedelta(seconds=interval),
        )

    @staticmethod
    def _ensure_indexes(table: Table, indexes: dict[str, Any]) -> None:
        present = {column for index in table.list_indices() for column in index.columns}
        for column, config in indexes.items():
            if column not in present:
                table.create_index(column, config=config)

    @staticmethod
    def _open_or_create(db: lancedb.DBConnection, name: str, schema: pa.Schema) -> Table:
        try:
            table = db.open_table(name)
        except ValueError:  # not there yet; exist_ok covers a concurrent creator
            return db.create_table(name, schema=schema, exist_ok=True)
        if "vector" in schema.names and table.schema.field("vector") != schema.field("vector"):
            raise IndexSchemaError(
                f"LanceDB table {name} holds vectors of another dimension; "
                "use another table name or directory"
            )
        return table

    def _chunks(self) -> Table:
        return self._table(
            self.settings.chunks_table,
            chunk_schema(self.dim),
            {"text": FTS(), "doc_key": BTree()},
        )

    def _mentions(self) -> Table:
        return self._table(self.settings.entities_table, MENTION_SCHEMA, {"entity_id": BTree()})

    # --- writes ---------------------------------------------------------------------------

    def upsert(self, docs: Sequence[DocumentChunks]) -> int:
        """Upsert the documents' chunks; replaced documents lose their stale chunks."""
        docs = plain_documents(dedupe_documents(docs))
        if not docs:
            return 0
        check_dims(docs, self.dim)
        table = self._chunks()
        data = self._chunk_rows(docs)
        replaced = [(doc.tenant_id, doc.doc_key) for doc in docs if doc.replace]
        stale = f"({_doc_filter(replaced)}) AND chunk_id != {sql_quote(META_CHUNK_ID)}"
        if data.num_rows == 0 and not replaced:
            return 0
        try:
            if data.num_rows == 0:
                table.delete(stale)
            else:
                builder = (
                    table.merge_insert(_CHUNK_KEY)
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                )
                if replaced:
                    builder = builder.when_not_matched_by_source_delete(stale)
                builder.execute(data)
        except _BACKEND_ERRORS as exc:
            raise IndexUnavailableError(f"LanceDB upsert failed: {exc}") from exc
        self._after_write()
        return int(data.num_rows)

    def _chunk_rows(self, docs: Sequence[DocumentChunks]) -> pa.Table:
        schema = chunk_schema(self.dim)
        now = datetime.now(UTC)
        columns: dict[str, list[Any]] = {name: [] for name in schema.names if name != "vector"}
        for doc in docs:
            for chunk in doc.chunks:
                row = {
                    "tenant_id": doc.tenant_id,
                    "doc_key": doc.doc_key,
                    "chunk_id": chunk.chunk_id,
                    "text": chunk.text,
                    "title": doc.title,
                    "doi": doc.doi,
                    "job_id": doc.job_id,
                    "page_start": chunk.page_start,
                    "page_end": chunk.page_end,
                    "section_path": list(chunk.section_path),
                    "updated_at": now,
                }
                for name, values in columns.items():
                    values.append(row[name])
        arrays = {name: pa.array(v, type=schema.field(name).type) for name, v in columns.items()}
        flat = np.concatenate([doc.vectors for doc in docs]).astype(np.float32).reshape(-1)
        arrays["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), self.dim)
        return pa.Table.from_arrays([arrays[name] for name in schema.names], schema=schema)

    def delete_document(self, tenant_id: str, doc_key: str) -> int:
        """Remove the document's chunks and mentions."""
        where = _doc_filter([(tenant_id, doc_key)])
        chunks, mentions = self._chunks(), self._mentions()
        try:
            removed = chunks.count_rows(where)
            chunks.delete(where)
            mentions.delete(where)
        except _BACKEND_ERRORS as exc:
            raise IndexUnavailableError(f"LanceDB delete failed: {exc}") from exc
        return int(removed)

    def upsert_mentions(
        self, tenant_id: str, doc_key: str, mentions: Sequence[EntityMention]
    ) -> int:
        """Replace the document's mentions in one commit."""
        mentions = plain_mentions(dedupe_mentions(mentions))
        table = self._mentions()
        now = datetime.now(UTC)
        data = pa.Table.from_pylist(
            [
                {
                    "tenant_id": tenant_id,
                    "doc_key": doc_key,
                    "entity_id": mention.entity_id,
                    "entity_type": mention.entity_type,
                    "label": mention.label,
                    "updated_at": now,
                }
                for mention in mentions
            ],
            schema=MENTION_SCHEMA,
        )
        where = _doc_filter([(tenant_id, doc_key)])
        try:
            if not mentions:
                table.delete(where)
            else:
                (
                    table.merge_insert(_MENTION_KEY)
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .when_not_matched_by_source_delete(where)
                    .execute(data)
                )
        except _BACKEND_ERRORS as exc:
            raise IndexUnavailableError(f"LanceDB mention upsert failed: {exc}") from exc
        self._after_write()
        return len(mentions)

    def _after_write(self) -> None:
        every = self.settings.lancedb_optimize_every
        self._writes += 1
        if every and self._writes % every == 0:
            self.optimize()

    def optimize(self) -> None:
        """Compact fragments and bring the full-text index up to date (best effort)."""
        for table in (self._chunks(), self._mentions()):
            try:
                table.optimize()
            except _BACKEND_ERRORS as exc:  # another writer's commit won; try next time
                log.warning("LanceDB optimize of %s skipped: %s", table.name, exc)

    # --- reads ----------------------------------------------------------------------------

    def count(self, *, tenant_id: str | None = None, doc_key: str | None = None) -> int:
        """Number of stored chunks matching the filters."""
        clauses = []
        if tenant_id is not None:
            clauses.append(f"tenant_id = {sql_quote(tenant_id)}")
        if doc_key is not None:
            clauses.append(f"doc_key = {sql_quote(doc_key)}")
        try:
            return int(self._chunks().count_rows(" AND ".join(clauses) or None))
        except _BACKEND_ERRORS as exc:
            raise IndexUnavailableError(f"LanceDB count failed: {exc}") from exc

    def search(
        self,
        query_text: str,
        query_vector: FloatArray | None,
        k: int = 10,
        tenant_id: str | None = None,
    ) -> list[SearchHit]:
        """Vector (cosine) and full-text (BM25) legs, fused by reciprocal rank."""
        if k < 1:
            return []
        table = self._chunks()
        limit = k * self.settings.candidate_factor
        where = f"tenant_id = {sql_quote(tenant_id)}" if tenant_id is not None else None
        vector_rows: list[CandidateRow] = []
        text_rows: list[CandidateRow] = []
        try:
            if query_vector is not None:
                vector = check_query_vector(query_vector, self.dim)
                query: Any = table.search(vector, query_type="vector")
                query = query.distance_type("cosine")
                vector_rows = candidates(_run(query, where, limit, "_distance"))
            if query_text.strip():
                query = table.search(query_text, query_type="fts", fts_columns="text")
                text_rows = candidates(_run(query, where, limit, "_score"))
        except _BACKEND_ERRORS as exc:
            raise IndexUnavailableError(f"LanceDB search failed: {exc}") from exc
        return fuse_hits(
            vector_rows, text_rows, query_text=query_text, k=k, rrf_k=self.settings.rrf_k
        )

    def find_by_entity(
        self, entity_id: str, tenant_id: str | None = None, limit: int = 100
    ) -> list[EntityHit]:
        """Documents mentioning the entity, with their title and DOI when indexed."""
        where = f"entity_id = {sql_quote(entity_id)}"
        if tenant_id is not None:
            where += f" AND tenant_id = {sql_quote(tenant_id)}"
        try:
            rows = self._mentions().search().where(where).limit(limit).to_list()
            titles = self._titles({(row["tenant_id"], row["doc_key"]) for row in rows})
        except _BACKEND_ERRORS as exc:
            raise IndexUnavailableError(f"LanceDB entity lookup failed: {exc}") from exc
        hits = []
        for row in sorted(rows, key=lambda r: (r["tenant_id"], r["doc_key"])):
            title, doi = titles.get((row["tenant_id"], row["doc_key"]), (None, None))
            hits.append(
                EntityHit(
                    entity_id=row["entity_id"],
                    entity_type=row["entity_type"],
                    label=row["label"],
                    tenant_id=row["tenant_id"],
                    doc_key=row["doc_key"],
                    title=title,
                    doi=doi,
                )
            )
        return hits

    def _titles(self, docs: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, Any]]:
        found: dict[tuple[str, str], tuple[Any, Any]] = {}
        table = self._chunks()
        for tenant, doc in sorted(docs):  # one small query per document: fine for a lookup
            rows = (
                table.search()
                .where(_doc_filter([(tenant, doc)]))
                .select(["title", "doi"])
                .limit(1)
                .to_list()
            )
            if rows:
                found[(tenant, doc)] = (rows[0]["title"], rows[0]["doi"])
        return found

    def close(self) -> None:
        """Drop table handles (LanceDB keeps no server connection)."""
        with self._lock:
            self._tables.clear()
            self._db = None


def _run(query: Any, where: str | None, limit: int, score: str) -> list[dict[str, Any]]:
    if where is not None:
        query = query.where(where, prefilter=True)
    columns = [*_CANDIDATE_COLUMNS, score]  # asking for the score column keeps Lance quiet
    rows: list[dict[str, Any]] = query.select(columns).limit(limit).to_list()
    return rows
