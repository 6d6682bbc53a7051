"""What an outcome means for the outside world, as plain values: the ledger transition to write
and the messages to publish once the ledger accepted it. Pure functions, unit-tested."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest_ray.config import Settings
from ingest_ray.events import DeadLetter, DocumentSource, Envelope, IngestResult, MappingRequest
from ingest_ray.ledger.base import Job, JobError, TransitionRequest
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.pipelines.spec import Pipeline
from ingest_ray.runtime.dispatch_core import Advance, Fail, Finish, Outcome, Retry
from ingest_ray.runtime.work import StageFailure, WorkItem
from ingest_ray.states import JobStatus

P = JobStatus.PROCESSING


@dataclass(frozen=True, slots=True)
class Message:
    """A message to publish after the ledger accepted the transition it belongs to."""

    topic: str
    key: str
    event: Envelope


def start_request(item: WorkItem, catalog: Catalog) -> TransitionRequest:
    """queued -> processing at the item's stage, with a lease for the call."""
    spec = catalog.pipeline(item.pipeline).stages[item.stage_index]
    return TransitionRequest(
        item.job_id, JobStatus.QUEUED, P, stage=spec.stage, attempts=item.attempt,
        lease_s=spec.lease_s, data={"stage_attempt": item.attempt},
    )  # fmt: skip


def transition_for(outcome: Outcome, catalog: Catalog) -> TransitionRequest:
    """The ledger write that makes ``outcome`` true (compare-and-set on the try number)."""
    item = outcome.item
    if isinstance(outcome, Advance):
        nxt = catalog.pipeline(item.pipeline).stages[item.stage_index + 1]
        return TransitionRequest(
            item.job_id, P, P, stage=outcome.next_stage, attempts=1,
            expected_attempts=item.attempt, lease_s=nxt.lease_s,
            output_stage=outcome.stage, output=outcome.output,
            data={"completed": outcome.stage, "duration_ms": round(outcome.duration_s * 1000)},
        )  # fmt: skip
    if isinstance(outcome, Finish):
        data: dict[str, Any] = {"completed": outcome.stage}
        if outcome.outcome:
            data["outcome"] = outcome.outcome
        return TransitionRequest(
            item.job_id, P, JobStatus.COMPLETED, expected_attempts=item.attempt,
            output_stage=outcome.stage, output=outcome.output, data=data,
        )  # fmt: skip
    if isinstance(outcome, Retry):
        return TransitionRequest(
            item.job_id, P, P, stage=outcome.stage, attempts=outcome.attempt + 1,
            expected_attempts=outcome.attempt, error=_error(outcome.failure, outcome.stage),
            data={"retry_in_s": round(outcome.delay_s, 3), "failed_attempt": outcome.attempt},
        )  # fmt: skip
    return TransitionRequest(
        item.job_id, P, JobStatus.FAILED, expected_attempts=outcome.attempt,
        error=_error(outcome.failure, outcome.stage), data={"failed_stage": outcome.stage},
    )  # fmt: skip


def messages_for(outcome: Outcome, catalog: Catalog, settings: Settings) -> list[Message]:
    """Messages that follow an accepted outcome: results, mapping events, dead letters."""
    item = outcome.item
    out: list[Message] = []
    pipeline = catalog.pipeline(item.pipeline)
    if isinstance(outcome, Advance | Finish) and _maps_now(outcome, pipeline):
        outputs = {**item.outputs, outcome.stage: outcome.output}
        mapping = MappingRequest(
            job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            metadata={"stages": sorted(outputs)},
        )  # fmt: skip
        out.append(Message(settings.topic_mapping, item.doc_key, mapping))
    if isinstance(outcome, Finish):
        result = IngestResult(
            job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            pipeline=item.pipeline, status=JobStatus.COMPLETED.value,
            outputs={**item.outputs, outcome.stage: outcome.output},
        )  # fmt: skip
        out.append(Message(settings.topic_results, item.doc_key, result))
    elif isinstance(outcome, Fail):
        error = _error(outcome.failure, outcome.stage).model_dump()
        letter = DeadLetter(
            reason=outcome.failure.message, error_type=outcome.failure.error_type,
            job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            stage=outcome.stage, attempts=outcome.attempt,
        )  # fmt: skip
        result = IngestResult(
            job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            pipeline=item.pipeline, status=JobStatus.FAILED.value, error=error,
        )  # fmt: skip
        out += [
            Message(settings.topic_deadletter, item.doc_key, letter),
            Message(settings.topic_results, item.doc_key, result),
        ]
    return out


def _maps_now(outcome: Advance | Finish, pipeline: Pipeline) -> bool:
    """A mapping event goes out after the pipeline's mapping stage, or when a job finishes
    early without reaching it (a DOI with no open full text is still mapped by its metadata)."""
    if pipeline.mapping_after is None:
        return False
    if outcome.stage == pipeline.mapping_after:
        return True
    return isinstance(outcome, Finish) and pipeline.index_of(outcome.stage) < pipeline.index_of(
        pipeline.mapping_after
    )


def work_item_from_job(job: Job, catalog: Catalog) -> WorkItem | None:
    """Rebuild the Dispatcher's view of a queued or processing job from its ledger record."""
    if job.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
        return None
    pipeline = catalog.pipeline(job.pipeline)
    # a processing job resumes its current stage; a retried one the stage where it failed
    stage_index = pipeline.index_of(job.stage) if job.stage else 0
    return WorkItem(
        job_id=job.job_id, tenant_id=job.tenant_id, doc_key=job.doc_key, pipeline=job.pipeline,
        priority=job.priority, source=DocumentSource.model_validate(job.metadata["source"]),
        stage_index=stage_index, attempt=max(1, job.attempts) if job.status is P else 1,
        metadata=dict(job.metadata.get("request", {})), outputs=dict(job.outputs),
        needs_start=job.status is JobStatus.QUEUED,
    )  # fmt: skip


def _error(failure: StageFailure, stage: str) -> JobError:
    return JobError(
        type=failure.error_type, message=failure.message, stage=stage, retryable=failure.retryable
    )
