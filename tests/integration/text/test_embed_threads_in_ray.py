"""The embed stage inside real Ray actors: its model threads follow the ``num_cpus`` the actor
asked for, and the vectors do not depend on them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import ray

from ingest_ray.config import Settings
from ingest_ray.stages import factories
from ingest_ray.stages.embed import EmbedStage
from ingest_ray.text.onnx_bert import OnnxBertEncoder

TEXTS = ["enzyme kinetics in aqueous solution", "a second text, about graph neural networks"]


@ray.remote
class EmbedProbe:
    """What a pool actor does: build the embed stage from the process settings."""

    def __init__(self) -> None:
        stage = factories.embed(Settings())
        assert isinstance(stage, EmbedStage)
        self.embedder = stage._embedder

    def probe(self) -> tuple[str, int, Any]:
        encoder = self.embedder.encoder
        threads = encoder._session.get_session_options().intra_op_num_threads
        return type(encoder).__name__, int(threads), self.embedder.embed(TEXTS)


@pytest.mark.parametrize("cpus", [1, 2])
def test_embed_stage_threads_follow_the_actor_num_cpus(local_ray: None, cpus: int) -> None:
    actor = EmbedProbe.options(num_cpus=cpus).remote()  # type: ignore[attr-defined]
    try:
        backend, threads, vectors = ray.get(actor.probe.remote(), timeout=180)
    finally:
        ray.kill(actor)
    assert backend == OnnxBertEncoder.__name__
    assert threads == cpus
    here = factories.embed(Settings())
    assert isinstance(here, EmbedStage)
    np.testing.assert_allclose(vectors, here._embedder.embed(TEXTS), atol=1e-5)
