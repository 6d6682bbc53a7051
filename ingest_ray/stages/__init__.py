"""Pipeline stages: the interface (``base``) and the built-in implementations."""

from __future__ import annotations

from ingest_ray.stages.base import BaseStage, Stage, StageInput, StageOutput

__all__ = ["BaseStage", "Stage", "StageInput", "StageOutput"]
