"""Fixtures of the text tests: the real bundled model and tokenizer, loaded once per session."""

from __future__ import annotations

import pytest

from ingest_ray.text.chunker import Chunker
from ingest_ray.text.embedder import Embedder, embedder_from_settings
from ingest_ray.text.settings import TextSettings
from ingest_ray.text.tokenizer import ModelTokenizer, load_tokenizer


@pytest.fixture(scope="session")
def text_settings() -> TextSettings:
    return TextSettings()


@pytest.fixture(scope="session")
def tokenizer(text_settings: TextSettings) -> ModelTokenizer:
    return load_tokenizer(text_settings.embedding_model)


@pytest.fixture(scope="session")
def embedder(text_settings: TextSettings) -> Embedder:
    return embedder_from_settings(text_settings)


@pytest.fixture
def small_chunker(tokenizer: ModelTokenizer) -> Chunker:
    """Small chunks, so short synthetic texts already need several."""
    return Chunker(tokenizer, max_tokens=40, overlap_tokens=8)
