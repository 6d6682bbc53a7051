"""The BERT encoder on ONNX Runtime: the same weights and the same pooling as the numpy backend,
run by ORT's fused CPU kernels.

The ONNX graph is built here, at load time, from the model's own ``model.safetensors`` with
``onnx.helper`` (no export tool, no torch, nothing downloaded): embeddings, ``num_layers``
post-norm encoder layers (ORT's fused ``Attention``, exact erf GELU) and masked mean pooling, so
one ``run`` answers the pooled vectors of a batch. ORT gets ``threads`` intra-op threads and
does not spin-wait (cores are shared with other actors).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest_ray.text.bert import BertConfig, FloatArray, NumpyBertEncoder
from ingest_ray.text.errors import EmbeddingModelError
from ingest_ray.text.models import ModelFiles

_F32 = 1  # onnx.TensorProto.FLOAT
_I32 = 6  # onnx.TensorProto.INT32
_I64 = 7  # onnx.TensorProto.INT64
_MS = "com.microsoft"  # ORT's contrib operators (the fused Attention)
_OPSET = 17  # LayerNormalization


def available() -> bool:
    """Whether onnxruntime and onnx are installed."""
    try:
        importlib.import_module("onnxruntime")
        importlib.import_module("onnx")
    except ImportError:
        return False
    return True


class OnnxBertEncoder(NumpyBertEncoder):
    """Mean-pooled, L2-normalised BERT sentence embeddings computed by ONNX Runtime."""

    def __init__(self, files: ModelFiles, *, threads: int = 1) -> None:
        super().__init__(files, threads=threads)
        try:
            ort: Any = importlib.import_module("onnxruntime")
        except ImportError as exc:
            raise EmbeddingModelError(
                "embedding_backend='onnx' needs onnxruntime and onnx (pip install onnxruntime onnx)"
            ) from exc
        model = build_graph(self._weights, self.config)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(threads, 0)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._weights = {}  # ORT holds its own copy
        self._blas = None  # ORT's threads are set on the session, not through BLAS

    def _pooled(self, ids: NDArray[np.int64], types: NDArray[np.int64], mask: FloatArray) -> Any:
        feeds = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        [pooled] = self._session.run(["pooled"], feeds)
        return pooled


def build_graph(weights: dict[str, FloatArray], config: BertConfig) -> bytes:
    """The serialised ONNX model of the encoder and its pooling (inputs ``input_ids``,
    ``token_type_ids`` int64 and ``attention_mask`` float32, all ``[batch, length]``; output
    ``pooled`` float32 ``[batch, hidden]``, not yet normalised)."""
    onnx: Any = importlib.import_module("onnx")
    graph = _Graph(onnx, weights, config)
    x = graph.embeddings()
    mask = graph.mask_index()
    for layer in range(config.num_layers):
        x = graph.layer(x, f"encoder.layer.{layer}.", mask)
    pooled = graph.pool(x)
    helper = onnx.helper
    body = helper.make_graph(
        graph.nodes,
        "bert_mean_pooled",
        [
            helper.make_tensor_value_info("input_ids", _I64, ["batch", "length"]),
            helper.make_tensor_value_info("token_type_ids", _I64, ["batch", "length"]),
            helper.make_tensor_value_info("attention_mask", _F32, ["batch", "length"]),
        ],
        [helper.make_tensor_value_info(pooled, _F32, ["batch", config.hidden_size])],
        initializer=graph.initializers,
    )
    opsets = [helper.make_opsetid("", _OPSET), helper.make_opsetid(_MS, 1)]
    model = helper.make_model(body, opset_imports=opsets)
    model.ir_version = 8
    return bytes(model.SerializeToString())


class _Graph:
    """Nodes and initializers of the graph being built; each method answers its output name."""

    def __init__(self, onnx: Any, weights: dict[str, FloatArray], config: BertConfig) -> None:
        self._onnx = onnx
        self._weights = weights
        self._config = config
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._serial = 0

    def _const(self, name: str, value: NDArray[Any]) -> str:
        self.initializers.append(self._onnx.numpy_helper.from_array(value, name))
        return name

    def _weight(self, name: str, *, transpose: bool = False) -> str:
        value = self._weights[name]
        return self._const(name, np.ascontiguousarray(value.T if transpose else value))

    def _op(self, op: str, inputs: list[str], *, domain: str = "", **attrs: Any) -> str:
        self._serial += 1
        out = f"{op.lower()}_{self._serial}"
        node = self._onnx.helper.make_node(op, inputs, [out], domain=domain or None, **attrs)
        self.nodes.append(node)
        return out

    def _linear(self, x: str, prefix: str) -> str:
        product = self._op("MatMul", [x, self._weight(f"{prefix}.weight", transpose=True)])
        return self._op("Add", [product, self._weight(f"{prefix}.bias")])

    def _norm(self, x: str, prefix: str) -> str:
        gamma, beta = self._weight(f"{prefix}.weight"), self._weight(f"{prefix}.bias")
        return self._op(
            "LayerNormalization", [x, gamma, beta], axis=-1, epsilon=self._config.layer_norm_eps
        )

    def embeddings(self) -> str:
        """Word + position + token-type embeddings, layer-normalised."""
        word = self._op("Gather", [self._weight("embeddings.word_embeddings.weight"), "input_ids"])
        kinds = self._weight("embeddings.token_type_embeddings.weight")
        kind = self._op("Gather", [kinds, "token_type_ids"])
        shape = self._op("Shape", ["input_ids"])
        length = self._op("Gather", [shape, self._const("one_i64", np.array(1, np.int64))])
        zero, one = self._const("zero", np.array(0, np.int64)), "one_i64"
        positions = self._op("Range", [zero, length, one])
        table = self._weight("embeddings.position_embeddings.weight")
        position = self._op("Gather", [table, positions])
        summed = self._op("Add", [self._op("Add", [word, kind]), position])
        return self._norm(summed, "embeddings.LayerNorm")

    def mask_index(self) -> str:
        """The attention mask as int32, the form ORT's fused ``Attention`` takes."""
        return self._op("Cast", ["attention_mask"], to=_I32)

    def layer(self, x: str, p: str, mask: str) -> str:
        """One post-norm encoder layer; self-attention is ORT's fused ``Attention`` kernel (one
        GEMM for Q, K and V, masked softmax, heads merged), the rest standard operators."""
        w = self._weights
        names = ("query", "key", "value")
        qkv = np.concatenate([w[f"{p}attention.self.{n}.weight"].T for n in names], axis=1)
        bias = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in names])
        inputs = [x, self._const(f"{p}qkv.weight", np.ascontiguousarray(qkv)),
                  self._const(f"{p}qkv.bias", bias), mask]  # fmt: skip
        context = self._op("Attention", inputs, domain=_MS, num_heads=self._config.num_heads)
        attn = self._linear(context, f"{p}attention.output.dense")
        x = self._norm(self._op("Add", [attn, x]), f"{p}attention.output.LayerNorm")
        inner = self._gelu(self._linear(x, f"{p}intermediate.dense"))
        out = self._linear(inner, f"{p}output.dense")
        return self._norm(self._op("Add", [out, x]), f"{p}output.LayerNorm")

    def _gelu(self, x: str) -> str:
        """``0.5 * x * (1 + erf(x / sqrt(2)))``, the exact GELU (ORT fuses it into one kernel)."""
        root2 = self._const(f"sqrt2_{self._serial}", np.array(np.sqrt(2.0), np.float32))
        half = self._const(f"half_{self._serial}", np.array(0.5, np.float32))
        erf = self._op("Erf", [self._op("Div", [x, root2])])
        ones = self._const(f"one_{self._serial}", np.array(1.0, np.float32))
        return self._op("Mul", [self._op("Mul", [x, self._op("Add", [erf, ones])]), half])

    def pool(self, x: str) -> str:
        """Masked mean over the tokens: ``sum(x * mask) / max(sum(mask), 1e-9)``."""
        axis2 = self._const("axis_2", np.array([2], np.int64))
        axis1 = self._const("axis_1", np.array([1], np.int64))
        mask = self._op("Unsqueeze", ["attention_mask", axis2])
        summed = self._op("ReduceSum", [self._op("Mul", [x, mask]), axis1], keepdims=0)
        count = self._op("ReduceSum", ["attention_mask", axis1], keepdims=1)
        floor = self._const("tiny", np.array(1e-9, np.float32))
        out = self._op("Div", [summed, self._op("Max", [count, floor])])
        self.nodes.append(self._onnx.helper.make_node("Identity", [out], ["pooled"]))
        return "pooled"
