"""The index contract, run against every :class:`IndexSink` (LanceDB in the unit tests,
LanceDB and pgvector in the integration tests). Subclasses provide a ``sink`` fixture."""

from __future__ import annotations

import numpy as np
import pytest

from ingest_ray.index.base import META_CHUNK_ID, EntityMention, IndexSink
from ingest_ray.index.errors import IndexSchemaError
from tests.unit.index.fakes import PASSAGES, HashingEmbedder, document


def _index_passages(sink: IndexSink, tenant_id: str = "t1") -> None:
    docs = [
        document(key, texts, tenant_id=tenant_id, title=key.upper())
        for key, texts in PASSAGES.items()
    ]
    sink.upsert(docs)


class SinkContract:
    def test_sink_upsert_twice_keeps_one_copy(self, sink: IndexSink) -> None:
        doc = document("doc:a", ["one text", "two text", "three text"])
        assert sink.upsert([doc]) == 3
        sink.upsert([doc])
        sink.upsert([doc, doc])  # a duplicate delivery inside one batch
        assert sink.count() == 3
        assert sink.count(doc_key="doc:a") == 3

    def test_sink_reindex_with_fewer_chunks_removes_stale(self, sink: IndexSink) -> None:
        sink.upsert([document("doc:a", ["alpha", "beta", "gamma"])])
        sink.upsert([document("doc:b", ["other", "document"])])
        sink.upsert([document("doc:a", ["alpha only"])])
        assert sink.count(doc_key="doc:a") == 1
        assert sink.count(doc_key="doc:b") == 2
        hits = sink.search("gamma", None, k=10)
        assert all(hit.chunk_id == "c0000" for hit in hits if hit.doc_key == "doc:a")

    def test_sink_reindex_keeps_meta_chunk(self, sink: IndexSink) -> None:
        meta = document("doc:a", ["Title and abstract"], chunk_ids=[META_CHUNK_ID], replace=False)
        sink.upsert([meta])
        sink.upsert([document("doc:a", ["first chunk", "second chunk"])])
        assert sink.count(doc_key="doc:a") == 3
        sink.upsert([document("doc:a", ["first chunk"])])
        assert sink.count(doc_key="doc:a") == 2
        sink.upsert([meta])  # a replayed metadata write leaves the full-text chunks alone
        assert sink.count(doc_key="doc:a") == 2

    def test_sink_reindex_with_no_chunks_empties_document(self, sink: IndexSink) -> None:
        sink.upsert([document("doc:a", ["alpha", "beta"])])
        assert sink.upsert([document("doc:a", [], replace=False)]) == 0
        assert sink.count(doc_key="doc:a") == 2
        sink.upsert([document("doc:a", [])])
        assert sink.count(doc_key="doc:a") == 0

    def test_sink_hybrid_search_finds_document_from_own_sentence(self, sink: IndexSink) -> None:
        _index_passages(sink)
        embedder = HashingEmbedder()
        query = "Timetable reliability matters more to passengers than peak velocity."
        hits = sink.search(query, embedder.embed([query])[0], k=3)
        assert hits[0].doc_key == "doc:trains"
        assert hits[0].chunk_id == "c0001"
        assert hits[0].vector_rank == 1 and hits[0].text_rank == 1
        assert hits[0].title == "DOC:TRAINS"
        assert hits[0].section_path == ["Body", "Part 1"]
        assert "reliability" in hits[0].snippet
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)

    def test_sink_search_legs_work_alone(self, sink: IndexSink) -> None:
        _index_passages(sink)
        text_only = sink.search("coral reefs bleach", None, k=2)
        assert text_only[0].doc_key == "doc:ocean"
        assert text_only[0].vector_rank is None
        query = "amino acid sequences deep networks protein folding"
        vector_only = sink.search("", HashingEmbedder().embed([query])[0], k=2)
        assert vector_only[0].doc_key == "doc:proteins"
        assert vector_only[0].text_rank is None

    def test_sink_tenant_filter(self, sink: IndexSink) -> None:
        sink.upsert([document("doc:shared", ["coral reef survey"], tenant_id="alpha")])
        sink.upsert([document("doc:shared", ["coral reef survey", "extra"], tenant_id="beta")])
        assert sink.count(tenant_id="alpha") == 1
        assert sink.count(tenant_id="beta") == 2
        vector = HashingEmbedder().embed(["coral reef"])[0]
        hits = sink.search("coral reef", vector, k=10, tenant_id="alpha")
        assert [(hit.tenant_id, hit.doc_key) for hit in hits] == [("alpha", "doc:shared")]
        everyone = sink.search("coral reef", vector, k=10)
        assert {hit.tenant_id for hit in everyone} == {"alpha", "beta"}

    def test_sink_keys_with_quotes_are_data(self, sink: IndexSink) -> None:
        key = "pdf_path:/data/o'brien's paper -- x.pdf"
        sink.upsert([document(key, ["quoted key text"], tenant_id="t'1")])
        sink.upsert([document(key, ["quoted key text"], tenant_id="t'1")])
        assert sink.count(tenant_id="t'1", doc_key=key) == 1
        hits = sink.search("quoted", None, k=5, tenant_id="t'1")
        assert hits[0].doc_key == key

    def test_sink_stores_text_holding_a_nul_as_a_space(self, sink: IndexSink) -> None:
        # text out of a PDF may hold U+0000: PostgreSQL's text cannot store it (the write
        # failed), and full-text search read "before\x00quantum" as one word
        doc = document("doc:nul", ["before\x00quantum chromodynamics", "plain"], title="Ti\x00tle")
        assert sink.upsert([doc]) == 2
        mention = EntityMention("orcid:0000-0001", "author", "A\x00B")
        assert sink.upsert_mentions("t1", "doc:nul", [mention]) == 1
        hits = sink.search("quantum", None, k=5, tenant_id="t1")
        assert hits and hits[0].doc_key == "doc:nul"
        assert hits[0].title == "Ti tle" and "\x00" not in hits[0].snippet
        assert [h.doc_key for h in sink.find_by_entity("orcid:0000-0001")] == ["doc:nul"]

    def test_sink_rejects_wrong_dimension(self, sink: IndexSink) -> None:
        with pytest.raises(IndexSchemaError):
            sink.upsert([document("doc:a", ["text"], embedder=HashingEmbedder(dim=8))])
        with pytest.raises(IndexSchemaError):
            sink.search("text", np.ones(8, dtype=np.float32), k=3)
        assert sink.count() == 0

    def test_sink_entity_mentions_are_replaced_and_found(self, sink: IndexSink) -> None:
        sink.upsert([document("doc:a", ["text"], title="Paper A", doi="10.1/a")])
        orcid = EntityMention("orcid:0000-0002-1825-0097", "author", "Josiah Carberry")
        ror = EntityMention("ror:03yrm5c26", "institution", "California Digital Library")
        assert sink.upsert_mentions("t1", "doc:a", [orcid, ror, orcid]) == 2
        sink.upsert_mentions("t1", "doc:a", [orcid, ror])
        sink.upsert_mentions("t2", "doc:b", [orcid])
        hits = sink.find_by_entity("orcid:0000-0002-1825-0097")
        assert [(h.tenant_id, h.doc_key) for h in hits] == [("t1", "doc:a"), ("t2", "doc:b")]
        assert hits[0].title == "Paper A" and hits[0].doi == "10.1/a"
        assert hits[0].label == "Josiah Carberry" and hits[0].entity_type == "author"
        assert hits[1].title is None
        assert [h.doc_key for h in sink.find_by_entity(orcid.entity_id, tenant_id="t2")] == [
            "doc:b"
        ]
        sink.upsert_mentions("t1", "doc:a", [orcid])  # ror no longer mentioned
        assert sink.find_by_entity("ror:03yrm5c26") == []
        sink.upsert_mentions("t1", "doc:a", [])
        assert [h.doc_key for h in sink.find_by_entity(orcid.entity_id)] == ["doc:b"]

    def test_sink_delete_document_removes_chunks_and_mentions(self, sink: IndexSink) -> None:
        sink.upsert([document("doc:a", ["one", "two"]), document("doc:b", ["three"])])
        sink.upsert_mentions("t1", "doc:a", [EntityMention("doi:10.1/x", "cited_doi", None)])
        assert sink.delete_document("t1", "doc:a") == 2
        assert sink.count() == 1
        assert sink.find_by_entity("doi:10.1/x") == []

    def test_sink_optimize_keeps_results(self, sink: IndexSink) -> None:
        _index_passages(sink)
        before = sink.search("signalling capacity tracks", None, k=3)
        sink.optimize()
        after = sink.search("signalling capacity tracks", None, k=3)
        assert [h.doc_key for h in after][:1] == [h.doc_key for h in before][:1] == ["doc:trains"]
        assert sink.count() == 8
