"""The KubeRay manifests (deploy/*.yaml) against the KubeRay CRD schemas (deploy/schemas/, strict)
and Kubernetes' own schemas (kubernetes-validate, strict: native resources and every pod
template), plus what no schema says: a RayService for the API, RayJobs for both workers on the
RayCluster that has the CPU and GPU groups, the MinerU resource, shared storage, one Ray."""

from __future__ import annotations

import copy
import gzip
import json
import shlex
from functools import cache
from typing import Any

import jsonschema
import pytest
from kubernetes_validate import utils as k8s

from tests.unit.deploy.conftest import ROOT, load_all, pinned_ray

MANIFESTS = sorted((ROOT / "deploy").glob("*.yaml"))
SCHEMAS = ROOT / "deploy" / "schemas"
K8S_VERSION = "1.33.0"


@cache
def ray_schema(kind: str) -> dict[str, Any]:
    raw = gzip.decompress((SCHEMAS / f"{kind.lower()}-v1.schema.json.gz").read_bytes())
    schema: dict[str, Any] = json.loads(raw)
    return schema


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in MANIFESTS for doc in load_all(path)]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def cluster_specs() -> list[dict[str, Any]]:
    return [d["spec"] for d in by_kind("RayCluster")] + [
        d["spec"]["rayClusterConfig"] for d in by_kind("RayService")
    ]


def pod_templates(spec: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [group["template"] for group in groups]


def check_ray_resource(doc: dict[str, Any]) -> None:
    """Strict CRD schema, then every pod template as a Kubernetes PodTemplate."""
    jsonschema.validate(doc, ray_schema(doc["kind"]))
    spec = doc["spec"].get("rayClusterConfig", doc["spec"].get("rayClusterSpec", doc["spec"]))
    for i, template in enumerate(pod_templates(spec) if "headGroupSpec" in spec else []):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                   "metadata": {"name": f"{doc['metadata']['name']}-{i}"}, "template": template}  # fmt: skip
        k8s.validate(wrapped, K8S_VERSION, strict=True)


def test_kuberay_manifests_exist_and_name_only_known_kinds() -> None:
    kinds = sorted(doc["kind"] for _, doc in documents())
    assert kinds == ["ConfigMap", "RayCluster", "RayJob", "RayJob", "RayService"]


@pytest.mark.parametrize(
    ("name", "doc"), documents(), ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"]
)
def test_kuberay_manifest_is_valid(name: str, doc: dict[str, Any]) -> None:
    if doc["apiVersion"] == "ray.io/v1":
        check_ray_resource(doc)
    else:
        k8s.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("where", "typo"),
    [
        (("spec", "rayClusterConfig", "workerGroupSpecs", 0), {"replica": 1}),
        (("spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers", 0),
         {"resorces": {}}),
        (("spec",), {"serveConfig": "x"}),
    ],
)  # fmt: skip
def test_kuberay_validation_catches_typos(
    where: tuple[str | int, ...], typo: dict[str, Any]
) -> None:
    broken = copy.deepcopy(by_kind("RayService")[0])
    node: Any = broken
    for key in where:
        node = node[key]
    node.update(typo)
    with pytest.raises((jsonschema.ValidationError, k8s.ValidationError)):
        check_ray_resource(broken)


def test_kuberay_api_is_a_rayservice_of_the_serve_app() -> None:
    import yaml

    (service,) = by_kind("RayService")
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    module, attribute = app["import_path"].split(":")
    assert (module, attribute) == ("serve_app.app", "deployment")
    assert app["deployments"][0]["name"] == "ingest-ray-api"
    text = (ROOT / "deploy" / "kuberay-rayservice.yaml").read_text()
    assert "later issue" not in text


def test_kuberay_workers_are_rayjobs_on_the_cluster_with_cpu_and_gpu_groups() -> None:
    from typer.testing import CliRunner

    from ingest_ray.cli import app

    (cluster,) = by_kind("RayCluster")
    jobs = by_kind("RayJob")
    entries = sorted(shlex.split(job["spec"]["entrypoint"]) for job in jobs)
    assert entries == [["ingest-ray", "worker", "start", k] for k in ("ingest", "mapping")]
    for entry in entries:
        assert CliRunner().invoke(app, [*entry[1:], "--help"]).exit_code == 0
    for job in jobs:
        assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
        # KubeRay refuses backoffLimit > 0 and shutdown-after-finish with a clusterSelector
        assert not job["spec"].get("backoffLimit") and not job["spec"]["shutdownAfterJobFinishes"]
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    gpu = groups["gpu"]
    resources = json.loads(json.loads(gpu["rayStartParams"]["resources"]))
    assert resources == {"mineru": 1}
    (container,) = gpu["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert "resources" not in groups["cpu"]["rayStartParams"]
    head_env = {
        e["name"]: e["value"]
        for e in pod_templates(cluster["spec"])[0]["spec"]["containers"][0]["env"]
    }
    assert float(head_env["RAY_JOB_STOP_WAIT_TIME_S"]) > 30  # longer than the drain grace


def test_kuberay_every_ray_container_gets_the_shared_settings() -> None:
    from ingest_ray.index.settings import IndexSettings
    from ingest_ray.storage import StorageSettings, open_blob_store
    from ingest_ray.storage.objects import ObjectBlobStore

    (config,) = by_kind("ConfigMap")
    data = config["data"]
    assert isinstance(
        open_blob_store(StorageSettings(blob_url=data["INGEST_RAY_BLOB_URL"])), ObjectBlobStore
    )
    index = IndexSettings(index_uri=data["INGEST_RAY_INDEX_URI"])
    assert index.backend == "pgvector" or not index.lancedb_is_local
    assert data["INGEST_RAY_MINERU_RESOURCE"] == "mineru"
    for spec in cluster_specs():
        for template in pod_templates(spec):
            for container in template["spec"]["containers"]:
                sources = container["envFrom"]
                assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
                assert {"secretRef": {"name": "ingest-ray"}} in sources


def test_kuberay_clusters_run_the_projects_ray() -> None:
    version = pinned_ray()
    for spec in cluster_specs():
        assert spec["rayVersion"] == version
        images = {c["image"] for t in pod_templates(spec) for c in t["spec"]["containers"]}
        assert all(image.startswith("ghcr.io/ingest-ray/ingest-ray") for image in images)


def test_kuberay_pins_the_control_plane_to_the_workers_head() -> None:
    (config,) = by_kind("ConfigMap")
    control = config["data"]["INGEST_RAY_CONTROL_RESOURCE"]
    (cluster,) = by_kind("RayCluster")
    head = json.loads(json.loads(cluster["spec"]["headGroupSpec"]["rayStartParams"]["resources"]))
    assert head == {control: 1}
    for group in cluster["spec"]["workerGroupSpecs"]:
        raw = group["rayStartParams"].get("resources")
        assert raw is None or control not in json.loads(json.loads(raw))
