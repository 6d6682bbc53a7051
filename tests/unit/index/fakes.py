"""Test helpers: a deterministic hashing embedder and document builders (no model, no network)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from ingest_ray.index.base import Chunk, DocumentChunks

DIM = 384


class HashingEmbedder:
    """Bag of words hashed into ``dim`` signed buckets, L2-normalised: texts sharing words are
    close, so vector search behaves sensibly without a model."""

    model_name = "hashing-test"

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] % 2 else -1.0
            norm = np.linalg.norm(out[row])
            if norm == 0:
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out


def document(
    doc_key: str,
    texts: Sequence[str],
    *,
    tenant_id: str = "t1",
    embedder: HashingEmbedder | None = None,
    title: str | None = "A title",
    doi: str | None = None,
    replace: bool = True,
    chunk_ids: Sequence[str] | None = None,
) -> DocumentChunks:
    """A document of ``texts`` (one chunk each) embedded by the hashing embedder."""
    ids = list(chunk_ids) if chunk_ids is not None else [f"c{i:04d}" for i in range(len(texts))]
    chunks = tuple(
        Chunk(cid, text, page_start=i, page_end=i, section_path=("Body", f"Part {i}"))
        for i, (cid, text) in enumerate(zip(ids, texts, strict=True))
    )
    vectors = (embedder or HashingEmbedder()).embed(list(texts))
    return DocumentChunks(
        tenant_id=tenant_id,
        doc_key=doc_key,
        chunks=chunks,
        vectors=vectors,
        title=title,
        doi=doi,
        job_id="job-1",
        replace=replace,
    )


#: short, distinct passages for search tests (written for these tests)
PASSAGES = {
    "doc:ocean": [
        "Coral reefs bleach when ocean temperatures stay high for several weeks.",
        "Symbiotic algae leave the coral tissue and the skeleton shows through.",
        "Recovery of reef ecosystems depends on water quality and fishing pressure.",
    ],
    "doc:proteins": [
        "Protein folding is predicted from amino acid sequences with deep networks.",
        "The predicted structures agree with crystallography for most domains.",
    ],
    "doc:trains": [
        "High speed railways reduce travel time between large European cities.",
        "Timetable reliability matters more to passengers than peak velocity.",
        "Signalling upgrades increase line capacity without new tracks.",
    ],
}
