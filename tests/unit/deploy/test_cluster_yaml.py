"""cluster.yaml against Ray's own cluster-config schema (from the installed ray wheel) and Ray's
own config check, plus what the schema cannot say: the GPU workers carry the MinerU resource
and install the MinerU extra, the head starts both workers and the API, storage is shared."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray.autoscaler

from tests.unit.deploy.conftest import ROOT, pinned_ray, pyproject

CLUSTER = ROOT / "cluster.yaml"
RAY_SCHEMA = Path(ray.autoscaler.__file__).with_name("ray-schema.json")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(CLUSTER.read_text())
    return loaded


def _env(config: dict[str, Any]) -> dict[str, str]:
    options = config["docker"]["run_options"]
    pairs = [o.split(" ", 1)[1] for o in options if o.startswith("--env ")]
    return dict(pair.split("=", 1) for pair in pairs)


def test_cluster_yaml_matches_rays_schema(config: dict[str, Any]) -> None:
    schema = json.loads(RAY_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(config, schema)


def test_cluster_yaml_schema_check_catches_a_typo(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["resource"] = {"mineru": 1}
    with pytest.raises(jsonschema.ValidationError, match="resource"):
        jsonschema.validate(broken, json.loads(RAY_SCHEMA.read_text()))


def test_cluster_yaml_passes_rays_own_config_check(config: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))  # fills the provider's defaults, as `ray up`
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"


def test_cluster_yaml_gpu_workers_carry_mineru_and_install_its_extra(
    config: dict[str, Any],
) -> None:
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["resources"]["mineru"] >= 1 and gpu["resources"]["GPU"] >= 1
    others = [t for n, t in config["available_node_types"].items() if n != "gpu_worker"]
    assert all("mineru" not in t["resources"] and "GPU" not in t["resources"] for t in others)
    (install,) = gpu["worker_setup_commands"]
    assert '"${HOME}/ingest_ray[mineru]"' in install
    assert "mineru" in pyproject()["project"]["optional-dependencies"]
    env = _env(config)
    assert env["INGEST_RAY_MINERU_RESOURCE"] == "mineru"
    assert float(env["INGEST_RAY_MINERU_NUM_GPUS"]) == gpu["resources"]["GPU"]


def test_cluster_yaml_head_starts_the_workers_and_the_api(config: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from ingest_ray.cli import app

    jobs = {}
    for command in config["head_start_ray_commands"]:
        words = shlex.split(command)
        if words[:3] == ["ray", "job", "submit"]:
            entry = words[words.index("--") + 1 :]
            jobs[entry[3] if entry[1] == "worker" else entry[1]] = entry
    assert set(jobs) == {"ingest", "mapping", "serve"}
    for entry in jobs.values():
        assert entry[0] == "ingest-ray"
        # each entry point is a real command of the CLI (its --help answers)
        result = CliRunner().invoke(app, [*entry[1:], "--help"])
        assert result.exit_code == 0, result.output
    assert any(c.startswith("ingest-ray topics create") for c in config["head_start_ray_commands"])


def test_cluster_yaml_points_storage_and_index_at_shared_places(config: dict[str, Any]) -> None:
    from ingest_ray.index.settings import IndexSettings
    from ingest_ray.storage import StorageSettings, open_blob_store
    from ingest_ray.storage.objects import ObjectBlobStore

    env = _env(config)
    store = open_blob_store(StorageSettings(blob_url=env["INGEST_RAY_BLOB_URL"]))
    assert isinstance(store, ObjectBlobStore)
    index = IndexSettings(index_uri=env["INGEST_RAY_INDEX_URI"])
    assert index.backend == "pgvector" or not index.lancedb_is_local


def test_cluster_yaml_images_and_pins_carry_the_projects_ray(config: dict[str, Any]) -> None:
    version = pinned_ray()
    images = [config["docker"]["image"]] + [
        t["docker"]["worker_image"]
        for t in config["available_node_types"].values()
        if "docker" in t
    ]
    assert all(image.startswith(f"rayproject/ray:{version}-py311") for image in images)
    installs = (
        config["setup_commands"]
        + config["available_node_types"]["gpu_worker"]["worker_setup_commands"]
    )
    assert all(f'"ray[serve]=={version}"' in command for command in installs)


def test_cluster_yaml_pins_the_control_plane_to_the_head(config: dict[str, Any]) -> None:
    types = config["available_node_types"]
    control = _env(config)["INGEST_RAY_CONTROL_RESOURCE"]
    assert types["head"]["resources"][control] >= 1
    assert all(control not in t["resources"] for n, t in types.items() if n != "head")
