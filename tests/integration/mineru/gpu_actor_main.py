"""``python -m tests.integration.mineru.gpu_actor_main BLOB_DIR DIGEST...``: the in-process GPU
layout in a Ray of its own (one *logical* GPU declared: there is no GPU on this machine).

The ``mineru`` pool's resources come from ``builtin_pools`` with ``mineru_num_gpus=1``; an actor
asks Ray for exactly those, builds the real ``mineru`` stage with the built-in factory (parse
mode ``inprocess``), replaces MinerU's model call in its own process and parses the blobs. Prints
one JSON line: the GPU ids Ray gave the actor, ``CUDA_VISIBLE_DEVICES`` there, and the outputs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import ray

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.pipelines.builtin import builtin_pools
from ingest_ray.stages.base import StageInput, StageOutput


class GpuMineruActor:
    """What a mineru pool actor holds: the stage, built once, in a process with a GPU."""

    def __init__(self, settings: Settings) -> None:
        from ingest_ray.stages.factories import mineru
        from tests.integration.mineru import fake_model

        fake_model.install()
        self.stage = mineru(settings)

    def run(self, digests: list[str]) -> dict[str, Any]:
        items = [_job(d) for d in digests]
        results = asyncio.run(self.stage.run_batch(items))
        outputs = [r.data if isinstance(r, StageOutput) else repr(r) for r in results]
        return {
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "parser": type(self.stage.parser).__name__,  # type: ignore[attr-defined]
            "outputs": outputs,
        }


def _job(digest: str) -> StageInput:
    return StageInput(
        job_id=f"job-{digest[:6]}", tenant_id="t", doc_key=f"sha:{digest}", pipeline="two_phase",
        stage="mineru", attempt=1,
        source=DocumentSource(kind=SourceKind.PDF_URL, value="https://example.org/a.pdf"),
        outputs={"pdf_fetch": {"pdf_sha256": digest}},
    )  # fmt: skip


def main(blob_dir: str, digests: list[str]) -> None:
    settings = Settings(
        mineru_num_gpus=1,
        sections={"parse": {"mode": "inprocess", "mineru_tier": "basic"},
                  "storage": {"blob_url": str(blob_dir)}},
    )  # fmt: skip
    spec = {pool.name: pool for pool in builtin_pools(settings)}["mineru"]
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        actor = (
            ray.remote(GpuMineruActor)
            .options(
                num_cpus=spec.resources.num_cpus,
                num_gpus=spec.resources.num_gpus,
                resources=dict(spec.resources.custom) or None,
            )
            .remote(settings)
        )
        answer = ray.get(actor.run.remote(digests), timeout=240)
        answer["asked"] = {"num_gpus": spec.resources.num_gpus, "batch_size": spec.batch_size}
        print(json.dumps(answer))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
