"""What the plain loop and Ray Data carry per document: a job's identity, source and the
outputs of the stages that ran, as JSON (a Ray Data row is one such string). Also the settings
every system of one run gets: its own blob store, LanceDB folder, topics and Redis prefix."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.pipelines.builtin import TWO_PHASE
from ingest_ray.stages.base import StageInput, StageOutput

TENANT = "bench"
PIPELINE = "two_phase"
STAGES: tuple[str, ...] = TWO_PHASE


@dataclass
class Job:
    """One document on its way through the stages."""

    job_id: str
    doc_key: str
    source: DocumentSource
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "running"  # running | completed | failed
    error: str | None = None

    @classmethod
    def for_pdf(cls, path: Path) -> Job:
        """A job for a local PDF."""
        source = DocumentSource(kind=SourceKind.PDF_PATH, value=str(path))
        return cls(job_id=uuid.uuid4().hex, doc_key=path.name, source=source)

    def input(self, stage: str) -> StageInput:
        """What ``stage`` gets for this job."""
        return StageInput(
            job_id=self.job_id, tenant_id=TENANT, doc_key=self.doc_key, pipeline=PIPELINE,
            stage=stage, attempt=1, source=self.source, outputs=dict(self.outputs),
        )  # fmt: skip

    def apply(self, stage: str, result: StageOutput | BaseException) -> None:
        """Record a stage's result: its output, an early finish, or the failure."""
        if isinstance(result, BaseException):
            self.status = "failed"
            self.error = f"{stage}: {type(result).__name__}: {result}"
            return
        self.outputs[stage] = result.data
        if result.finish or stage == STAGES[-1]:
            self.status = "completed"

    @property
    def pages(self) -> int:
        """Pages the parser found (0 before it ran)."""
        return int(self.outputs.get("mineru", {}).get("pages", 0))

    def to_json(self) -> str:
        """One Ray Data row."""
        return json.dumps({
            "job_id": self.job_id, "doc_key": self.doc_key,
            "source": self.source.model_dump(mode="json"), "outputs": self.outputs,
            "status": self.status, "error": self.error,
        })  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Job:
        """Back from a Ray Data row."""
        data = json.loads(text)
        source = DocumentSource.model_validate(data.pop("source"))
        return cls(source=source, **data)


def system_settings(base: Settings, work: Path, system: str) -> Settings:
    """``base`` with this system's own blob store, LanceDB, timing folder, topics, consumer
    group, Redis prefix and runtime name (nothing is shared between systems or runs)."""
    tag = f"{system}-{uuid.uuid4().hex[:8]}"
    sections = {
        **base.sections,
        "storage": {**base.sections.get("storage", {}), "blob_url": str(work / system / "blobs")},
        "index": {**base.sections.get("index", {}), "lancedb_dir": str(work / system / "lancedb")},
        "bench": {**base.sections.get("bench", {}), "timing_dir": str(work / system / "timing")},
    }
    return base.model_copy(update={
        "sections": sections, "redis_prefix": f"bench:pdf:{tag}:", "consumer_group": f"bench-{tag}",
        "topic_requests": f"bench.{tag}.requests", "topic_results": f"bench.{tag}.results",
        "topic_mapping": f"bench.{tag}.mapping", "topic_deadletter": f"bench.{tag}.dlq",
        "runtime_name": f"bench-{tag}", "metrics_port": -1,
    })  # fmt: skip
