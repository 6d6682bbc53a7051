"""A BERT encoder in numpy: sentence embeddings of a sentence-transformers BERT model, no torch.

It reads the model's ``model.safetensors`` and ``tokenizer.json`` and computes what
sentence-transformers computes for a ``Transformer -> Pooling(mean) [-> Normalize]`` model:
the BERT forward pass (post-norm layers, exact erf GELU), masked mean pooling, L2 normalisation.
Inputs longer than the model's ``max_seq_length`` are truncated, as sentence-transformers does.
The unit tests compare its vectors with ones sentence-transformers produced (to 1e-4).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
from tokenizers import Encoding, Tokenizer

from ingest_ray.text.errors import EmbeddingModelError
from ingest_ray.text.models import ModelFiles

FloatArray = NDArray[np.float32]
_PREFIXES: Final = ("bert.", "model.", "0.auto_model.")
_OTHER_POOLING: Final = (
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
)
# erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32 resolution near 1)
_ERF_P: Final = 0.3275911
_ERF_A: Final = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: FloatArray) -> FloatArray:
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * a)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    result: FloatArray = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return result


def _gelu(x: FloatArray) -> FloatArray:
    return (0.5 * x * (1.0 + _erf(x * np.float32(1 / np.sqrt(2.0))))).astype(np.float32)


def _layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: FloatArray = ((x - mean) / np.sqrt(var + eps) * weight + bias).astype(np.float32)
    return result


def l2_normalize(vectors: FloatArray) -> FloatArray:
    """Rows scaled to unit length (a zero row stays zero), as torch's ``F.normalize``."""
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    result: FloatArray = (vectors / norms).astype(np.float32)
    return result


@dataclass(frozen=True, slots=True)
class BertConfig:
    """The parts of ``config.json`` the forward pass needs."""

    hidden_size: int
    num_layers: int
    num_heads: int
    layer_norm_eps: float

    @classmethod
    def from_files(cls, files: ModelFiles) -> BertConfig:
        """Read ``config.json``; only BERT-family models with GELU are accepted."""
        config = files.read_json("config.json")
        if config.get("model_type") not in {"bert"} or config.get("hidden_act", "gelu") != "gelu":
            raise EmbeddingModelError(
                f"model {files.name!r} is not a BERT model with GELU; the numpy backend cannot "
                "run it (use embedding_backend='sentence-transformers')"
            )
        return cls(
            hidden_size=int(config["hidden_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_heads=int(config["num_attention_heads"]),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        )


def supports(files: ModelFiles) -> bool:
    """Whether a model folder is one this encoder can run exactly (BERT, mean pooling)."""
    pooling = files.read_json("1_Pooling/config.json")
    return (
        files.read_json("config.json").get("model_type") == "bert"
        and (files.root / "model.safetensors").is_file()
        and files.tokenizer_file.is_file()
        and bool(pooling.get("pooling_mode_mean_tokens"))
        and not any(pooling.get(key) for key in _OTHER_POOLING)
    )


class NumpyBertEncoder:
    """Mean-pooled, L2-normalised BERT sentence embeddings computed with numpy."""

    def __init__(self, files: ModelFiles, *, threads: int = 1) -> None:
        if not supports(files):
            raise EmbeddingModelError(
                f"model {files.name!r} at {files.root} is not a mean-pooled BERT with "
                "model.safetensors and tokenizer.json"
            )
        self.config = BertConfig.from_files(files)
        self.max_seq_length = files.max_seq_length()
        self.dim = self.config.hidden_size
        self._weights = _load_weights(files, self.config)
        self._tokenizer = Tokenizer.from_file(str(files.tokenizer_file))
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer.no_padding()  # batches are padded here, to their own longest text
        # BLAS threads per call (0: the library default). As many as CPUs the actor asked Ray
        # for; more threads than free cores make numpy many times slower. Limits are
        # process-wide, so calls are serialised while they hold one.
        self._threads = threads
        self._blas = ThreadpoolController() if threads > 0 else None
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int) -> FloatArray:
        """Embeddings of ``texts`` in order, shape ``(len(texts), dim)``, unit length."""
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock, self._blas_limit():
            for rows in _length_batches([len(e.ids) for e in encodings], batch_size):
                out[rows] = self._encode_batch([encodings[i] for i in rows])
        return out

    def _blas_limit(self) -> AbstractContextManager[object]:
        if self._blas is None:
            return nullcontext()
        return cast(
            AbstractContextManager[object],
            self._blas.limit(limits=self._threads, user_api="blas"),
        )

    def _encode_batch(self, encodings: Sequence[Encoding]) -> FloatArray:
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), length), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros((len(encodings), length), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n], types[row, :n], mask[row, :n] = encoding.ids, encoding.type_ids, 1.0
        return l2_normalize(np.asarray(self._pooled(ids, types, mask), dtype=np.float32))

    def _pooled(self, ids: NDArray[np.int64], types: NDArray[np.int64], mask: FloatArray) -> Any:
        """Masked mean of the last hidden states, before normalisation."""
        hidden = self._forward(ids, types, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        return summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)

    def _forward(
        self, ids: NDArray[np.int64], types: NDArray[np.int64], mask: FloatArray
    ) -> FloatArray:
        w, eps = self._weights, self.config.layer_norm_eps
        positions = np.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        additive = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in range(self.config.num_layers):
            x = self._layer(x, f"encoder.layer.{layer}.", additive.astype(np.float32))
        return x

    def _layer(self, x: FloatArray, p: str, additive: FloatArray) -> FloatArray:
        w, eps = self._weights, self.config.layer_norm_eps
        batch, length, hidden = x.shape
        heads = self.config.num_heads
        head_dim = hidden // heads

        def heads_first(name: str) -> FloatArray:
            y = _linear(
                x, w[f"{p}attention.self.{name}.weight"], w[f"{p}attention.self.{name}.bias"]
            )
            return y.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads_first("query"), heads_first("key"), heads_first("value")
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_dim)) + additive
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        attn = _linear(
            context, w[f"{p}attention.output.dense.weight"], w[f"{p}attention.output.dense.bias"]
        )
        x = _layer_norm(
            attn + x,
            w[f"{p}attention.output.LayerNorm.weight"],
            w[f"{p}attention.output.LayerNorm.bias"],
            eps,
        )
        inner = _gelu(
            _linear(x, w[f"{p}intermediate.dense.weight"], w[f"{p}intermediate.dense.bias"])
        )
        out = _linear(inner, w[f"{p}output.dense.weight"], w[f"{p}output.dense.bias"])
        return _layer_norm(
            out + x, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], eps
        )


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped longest first, at most ``batch_size`` per group, and a new group whenever a
    text is under half the group's longest, so padding never more than doubles the work (the
    grouping does not change the vectors: padding is masked out)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if current and (len(current) >= batch_size or 2 * lengths[index] < lengths[current[0]]):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _linear(x: FloatArray, weight: FloatArray, bias: FloatArray) -> FloatArray:
    return (x @ weight.T + bias).astype(np.float32, copy=False)


def _load_weights(files: ModelFiles, config: BertConfig) -> dict[str, FloatArray]:
    raw = load_file(str(files.root / "model.safetensors"))
    weights: dict[str, FloatArray] = {}
    for name, value in raw.items():
        if np.issubdtype(value.dtype, np.floating):
            weights[_strip_prefix(name)] = np.ascontiguousarray(value, dtype=np.float32)
    missing = [name for name in _required_weights(config) if name not in weights]
    if missing:
        raise EmbeddingModelError(
            f"model {files.name!r}: model.safetensors lacks {len(missing)} BERT weights "
            f"(first: {missing[0]})"
        )
    return weights


def _required_weights(config: BertConfig) -> list[str]:
    names = [
        f"embeddings.{part}"
        for part in (
            "word_embeddings.weight",
            "position_embeddings.weight",
            "token_type_embeddings.weight",
            "LayerNorm.weight",
            "LayerNorm.bias",
        )
    ]
    modules = (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    )
    for layer in range(config.num_layers):
        for module in modules:
            names += [
                f"encoder.layer.{layer}.{module}.weight",
                f"encoder.layer.{layer}.{module}.bias",
            ]
    return names


def _strip_prefix(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
