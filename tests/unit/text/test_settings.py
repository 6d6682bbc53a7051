from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingest_ray.text.settings import TextSettings


def test_text_settings_defaults_fit_the_bundled_model() -> None:
    settings = TextSettings()
    assert settings.embedding_model == "all-MiniLM-L6-v2"
    assert settings.chunk_max_tokens + 2 <= 256  # [CLS] and [SEP] included
    assert 0 < settings.chunk_overlap_tokens < settings.chunk_max_tokens
    assert settings.embed_batch_size > 1
    assert settings.device == "cpu"


def test_text_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_CHUNK_MAX_TOKENS", "128")
    monkeypatch.setenv("INGEST_RAY_EMBED_BATCH_SIZE", "8")
    settings = TextSettings()
    assert (settings.chunk_max_tokens, settings.embed_batch_size) == (128, 8)


def test_text_settings_reject_overlap_not_below_max() -> None:
    with pytest.raises(ValidationError, match="chunk_overlap_tokens"):
        TextSettings(chunk_max_tokens=64, chunk_overlap_tokens=64)


def test_text_settings_are_frozen() -> None:
    settings = TextSettings()
    with pytest.raises(ValidationError):
        settings.chunk_max_tokens = 10  # type: ignore[misc]
