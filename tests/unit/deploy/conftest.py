"""Helpers of the deployment-file tests: the files, their YAML, and the pinned versions."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]


def load_all(path: Path) -> list[dict[str, Any]]:
    """Every YAML document of ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned_ray() -> str:
    """The Ray version the project pins (``ray[serve]==X``), which every image must carry."""
    (pin,) = [d for d in pyproject()["project"]["dependencies"] if d.startswith("ray[")]
    return pin.split("==")[1]
