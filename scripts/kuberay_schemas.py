"""Regenerate deploy/schemas/*.schema.json.gz from the KubeRay CRDs (see deploy/schemas/README.md).

    python scripts/kuberay_schemas.py CRD_DIR [--ref TAG] [--commit SHA]

CRD_DIR holds ``ray.io_rayclusters.yaml``, ``ray.io_rayjobs.yaml`` and ``ray.io_rayservices.yaml``
(``ray-operator/config/crd/bases`` of a ray-project/kuberay checkout). For each CRD the
``ray.io/v1`` ``openAPIV3Schema`` is turned into a JSON Schema that rejects what
``kubectl apply --validate=strict`` rejects:

- every object with ``properties`` and no ``x-kubernetes-preserve-unknown-fields`` gets
  ``additionalProperties: false`` (the API server would prune, i.e. silently drop, an unknown
  field; a typo in a manifest should fail the test instead);
- ``nullable: true`` becomes a ``null`` alternative of the type;
- ``apiVersion``, ``kind``, ``metadata`` and ``spec`` are required, ``apiVersion``/``kind`` fixed;
- descriptions are dropped (the files stay small).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "deploy" / "schemas"
KINDS = {"rayclusters": "RayCluster", "rayjobs": "RayJob", "rayservices": "RayService"}


def strict(node: Any) -> Any:
    """The schema ``node`` with unknown fields refused and ``nullable`` spelled out."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if key != "description"}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def convert(crd: dict[str, Any], kind: str, origin: dict[str, str]) -> dict[str, Any]:
    """The strict JSON Schema of ``kind`` in ``ray.io/v1``."""
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": "ray.io/v1"}
    schema["properties"]["kind"] = {"const": kind}
    required = {*schema.get("required", ()), "apiVersion", "kind", "metadata", "spec"}
    schema["required"] = sorted(required)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"{kind} (ray.io/v1), strict",
        "x-origin": origin,
        **schema,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd_dir", type=Path)
    parser.add_argument("--ref", default="v1.7.0")
    parser.add_argument("--commit", default="")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for plural, kind in KINDS.items():
        source = f"ray-operator/config/crd/bases/ray.io_{plural}.yaml"
        crd = yaml.safe_load((args.crd_dir / f"ray.io_{plural}.yaml").read_text())
        origin = {"repository": "ray-project/kuberay", "ref": args.ref, "commit": args.commit,
                  "path": source}  # fmt: skip
        data = json.dumps(convert(crd, kind, origin), sort_keys=True, separators=(",", ":"))
        target = OUT / f"{kind.lower()}-v1.schema.json.gz"
        # mtime 0: the same input gives byte-identical files
        target.write_bytes(gzip.compress(data.encode(), compresslevel=9, mtime=0))
        print(f"{target.relative_to(OUT.parents[1])}: {len(data)} bytes of JSON")


if __name__ == "__main__":
    main()
