"""The ``embed`` stage: one vector per chunk, many jobs per model call.

Reads the chunk list (``outputs["chunk"]["chunks_sha256"]``), embeds every chunk, and stores the
vectors as little-endian float32 bytes, row ``i`` for chunk ``i``. Output:
``{"embeddings_sha256", "model", "dim", "count"}``. ``run_batch`` embeds the chunks of all its
jobs in model-sized slices across jobs and splits the rows back per job; a job whose chunk list
cannot be read fails alone, and a job cancelled meanwhile has its remaining chunks skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ingest_ray.errors import IngestError
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.storage.blobs import BlobStore
from ingest_ray.text.artifacts import load_chunks, store_vectors
from ingest_ray.text.bert import FloatArray
from ingest_ray.text.chunker import Chunk
from ingest_ray.text.embedder import Embedder, embedder_from_settings
from ingest_ray.text.errors import ArtifactMissingError
from ingest_ray.text.settings import TextSettings

#: Model batches per slice: between slices the stage drops the chunks of cancelled jobs.
SLICE_BATCHES = 4


class EmbedStage(BaseStage):
    """Embeds the chunks of many jobs at once with the process's shared model."""

    name: ClassVar[str] = "embed"
    batch_size: ClassVar[int] = 16

    def __init__(
        self, settings: TextSettings, blobs: BlobStore, *, embedder: Embedder | None = None
    ) -> None:
        self._blobs = blobs
        self._embedder = embedder or embedder_from_settings(settings)

    async def run(self, item: StageInput) -> StageOutput:
        """Embed one job's chunks."""
        [result] = await self.run_batch([item])
        if isinstance(result, IngestError):
            raise result
        return result

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Embed the chunks of all ``items`` in one model call; one result or error per item."""
        return await asyncio.to_thread(self._run_batch, items)

    def _run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        loaded = [self._chunks(item) for item in items]
        try:
            vectors = self._embed(items, loaded)
        except IngestError as exc:
            return [exc for _ in items]
        results: list[StageOutput | IngestError] = []
        for item, chunks, mine in zip(items, loaded, vectors, strict=True):
            if isinstance(chunks, IngestError):
                results.append(chunks)
                continue
            try:
                item.check_cancelled()
            except IngestError as exc:
                results.append(exc)
                continue
            data = {
                "embeddings_sha256": store_vectors(self._blobs, mine),
                "model": self._embedder.model_name,
                "dim": self._embedder.dim,
                "count": len(chunks),
            }
            results.append(StageOutput(data=data))
        return results

    def _embed(
        self, items: Sequence[StageInput], loaded: Sequence[list[Chunk] | IngestError]
    ) -> list[FloatArray]:
        """Vectors per item, computed in model-sized slices across items; before each slice,
        the chunks of jobs cancelled meanwhile are dropped (a cancel stops the work)."""
        pending = [(i, c.text) for i, chunks in enumerate(loaded) if isinstance(chunks, list)
                   for c in chunks]  # fmt: skip
        rows: dict[int, list[FloatArray]] = {i: [] for i in range(len(items))}
        step = max(1, self._embedder.batch_size * SLICE_BATCHES)
        for start in range(0, len(pending), step):
            part = [(i, t) for i, t in pending[start : start + step] if not items[i].cancelled]
            if part:
                for (i, _), vector in zip(part, self._embedder.embed([t for _, t in part]),
                                          strict=True):  # fmt: skip
                    rows[i].append(vector)
        dim = self._embedder.dim
        return [np.asarray(rows[i], dtype=np.float32).reshape(-1, dim) for i in range(len(items))]

    def _chunks(self, item: StageInput) -> list[Chunk] | IngestError:
        digest = item.outputs.get("chunk", {}).get("chunks_sha256")
        try:
            if not isinstance(digest, str) or not digest:
                raise ArtifactMissingError("no chunk list: the chunk stage has not run")
            return load_chunks(self._blobs, digest)
        except IngestError as exc:
            exc.job_id, exc.stage = exc.job_id or item.job_id, exc.stage or self.name
            return exc
