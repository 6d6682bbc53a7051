"""Child process of the index-URI tests: another node's index stage or search command. It builds
its sink from the environment only (INGEST_RAY_INDEX_URI, AWS_*, table names), as a Ray worker
does.

    index_child.py write DOC_KEY...  -> upserts those PASSAGES documents, prints the row count
    index_child.py search QUERY      -> prints [[doc_key, chunk_id], ...] best first, and count
"""

from __future__ import annotations

import json
import sys

from ingest_ray.index import IndexSettings, build_sink, run_search
from tests.unit.index.fakes import PASSAGES, HashingEmbedder, document


def main() -> None:
    op, *args = sys.argv[1:]
    settings = IndexSettings()
    embedder = HashingEmbedder(settings.embedding_dim)
    sink = build_sink(settings)
    try:
        if op == "write":
            sink.upsert([document(key, PASSAGES[key], embedder=embedder) for key in args])
            print(json.dumps({"count": sink.count()}))
        else:
            hits = run_search(settings, args[0], k=3, embedder=embedder)
            print(json.dumps({"hits": [[h.doc_key, h.chunk_id] for h in hits],
                              "count": sink.count()}))  # fmt: skip
    finally:
        sink.close()


if __name__ == "__main__":
    main()
