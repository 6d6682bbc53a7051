"""docker-compose.yml against the Compose specification schema (check-jsonschema's vendored
copy), plus the storage settings: every container that runs ingest_ray code sees the same blob
store and index, on the volume they all mount."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
#: services that run ingest_ray code (Ray nodes host the stage actors)
INGEST_SERVICES = {"ray-head", "ray-worker", "app", "mapping", "api"}


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_matches_the_compose_specification() -> None:
    done = _check(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_validation_catches_a_broken_file(tmp_path: Path, compose: dict[str, Any]) -> None:
    broken = dict(compose, services={**compose["services"], "app": {"image": 3, "restrt": "no"}})
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    done = _check(path)
    assert done.returncode == 1 and "restrt" in done.stdout


def test_compose_services_share_blob_store_and_index(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= INGEST_SERVICES
    settings = set()
    for name in INGEST_SERVICES:
        env = services[name]["environment"]
        blob, index = env["INGEST_RAY_BLOB_URL"], env["INGEST_RAY_INDEX_URI"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        # both live on the one named volume every ingest container mounts
        assert mounts.get("/data") == "app-data", name
        assert blob.startswith("/data/") and index.startswith("/data/"), name
        assert not {"INGEST_RAY_BLOB_DIR", "INGEST_RAY_LANCEDB_DIR"} & set(env), name
        settings.add((blob, index))
    assert len(settings) == 1
    assert "app-data" in compose["volumes"]


def test_compose_drivers_join_the_ray_cluster_before_they_start(compose: dict[str, Any]) -> None:
    for name in ("app", "mapping", "api"):
        service = compose["services"][name]
        script = service["entrypoint"][2]
        assert script.startswith(
            "ray start --address=ray-head:6379 --num-cpus=0 && exec ingest-ray"
        )
        assert service["command"][0] in {"worker", "serve"}
