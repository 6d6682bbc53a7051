"""The in-process GPU layout: the ``mineru`` pool asks Ray for ``mineru_num_gpus`` per actor and
the stage inside runs MinerU's entry point in that actor. Ray runs in a process of its own with
one logical GPU (this machine has none), so the session's Ray is not disturbed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ingest_ray.config import Settings
from ingest_ray.pipelines.builtin import builtin_pools
from ingest_ray.storage.blobs import FileBlobStore
from tests.integration.mineru.conftest import pdf

ROOT = Path(__file__).resolve().parents[3]


def test_the_mineru_pool_asks_for_gpus_or_a_custom_resource() -> None:
    pools = {p.name: p for p in builtin_pools(Settings(mineru_num_gpus=1, mineru_pool_max=3))}
    assert (pools["mineru"].resources.num_gpus, pools["mineru"].max_size) == (1, 3)
    assert pools["mineru"].batch_size > 1  # the stage packs a batch for MinerU
    custom = {p.name: p for p in builtin_pools(Settings(mineru_resource="mineru"))}
    assert custom["mineru"].resources.custom == {"mineru": 1.0}
    assert all(p.resources.num_gpus == 0 for p in pools.values() if p.name != "mineru")


def test_mineru_runs_in_process_in_an_actor_holding_a_gpu(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    digests = [blobs.put(pdf(n).read_bytes()) for n in ("sample-pdflatex-4pages", "sample-trivial")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.mineru.gpu_actor_main", str(blobs.root), *digests],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["asked"]["num_gpus"] == 1
    assert answer["gpu_ids"] == ["0"] and answer["cuda_visible_devices"] == "0"
    assert answer["parser"] == "MineruInProcessParser"
    assert [o["parser"] for o in answer["outputs"]] == ["mineru", "mineru"]
    assert [o["pages"] for o in answer["outputs"]] == [4, 1]
