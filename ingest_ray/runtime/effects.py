"""Every ledger write the Dispatcher makes, built in one place, as plain values.

Each function answers the :class:`TransitionRequest` that makes something true: a job starting,
an outcome, a job resumed after a restart or an expired lease, a job rejected for a pipeline the
runtime does not know. The messages that follow a change (results, mapping events, dead letters)
travel inside the request and are recorded in the outbox in the same atomic step. Pure
functions, unit-tested.
"""

from __future__ import annotations

from typing import Any

from ingest_ray.config import Settings
from ingest_ray.deadletters import job_letter
from ingest_ray.errors import BadJobRecordError
from ingest_ray.events import (
    DeadLetter,
    DocumentSource,
    Envelope,
    IngestResult,
    MappingRequest,
    encode,
)
from ingest_ray.ledger.base import Job, JobError, OutboxMessage, TransitionRequest
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.pipelines.spec import Pipeline, StageSpec
from ingest_ray.runtime.outcomes import Advance, Fail, Finish, Outcome, Retry
from ingest_ray.runtime.work import StageFailure, WorkItem
from ingest_ray.states import JobStatus


def start_request(item: WorkItem, catalog: Catalog) -> TransitionRequest:
    """queued -> processing at the item's stage, with a lease for the call."""
    spec = catalog.pipeline(item.pipeline).stages[item.stage_index]
    return TransitionRequest(
        item.job_id, JobStatus.QUEUED, JobStatus.PROCESSING, stage=spec.stage,
        attempts=item.attempt, lease_s=spec.lease_s, data={"stage_attempt": item.attempt},
        stage_errors=item.errors, stage_losses=item.losses,
    )  # fmt: skip


def transition_for(outcome: Outcome, catalog: Catalog, settings: Settings) -> TransitionRequest:
    """The ledger write that makes ``outcome`` true (compare-and-set on the try number), with
    the messages that follow it."""
    item, messages = outcome.item, tuple(messages_for(outcome, catalog, settings))
    processing = JobStatus.PROCESSING
    if isinstance(outcome, Advance):
        nxt = catalog.pipeline(item.pipeline).stages[item.stage_index + 1]
        return TransitionRequest(
            item.job_id, processing, processing, stage=outcome.next_stage, attempts=1,
            expected_attempts=item.attempt, lease_s=nxt.lease_s, output_stage=outcome.stage,
            output=outcome.output, stage_errors=0, stage_losses=0, messages=messages,
            data={"completed": outcome.stage, "duration_ms": round(outcome.duration_s * 1000)},
        )  # fmt: skip
    if isinstance(outcome, Finish):
        data: dict[str, Any] = {"completed": outcome.stage}
        if outcome.outcome:
            data["outcome"] = outcome.outcome
        return TransitionRequest(
            item.job_id, processing, JobStatus.COMPLETED, expected_attempts=item.attempt,
            output_stage=outcome.stage, output=outcome.output, data=data, messages=messages,
        )  # fmt: skip
    if isinstance(outcome, Retry):
        return TransitionRequest(
            item.job_id, processing, processing, stage=outcome.stage,
            attempts=outcome.attempt + 1, expected_attempts=outcome.attempt,
            error=_error(outcome.failure, outcome.stage), stage_errors=outcome.errors,
            stage_losses=outcome.losses, retry_in_s=outcome.delay_s,
            lease_s=outcome.delay_s + _spec_of(outcome, catalog).lease_s,
            data={"retry_in_s": round(outcome.delay_s, 3), "failed_attempt": outcome.attempt,
                  "lost": outcome.failure.lost},
        )  # fmt: skip
    return TransitionRequest(
        item.job_id, processing, JobStatus.FAILED, expected_attempts=outcome.attempt,
        error=_error(outcome.failure, outcome.stage), stage_errors=outcome.errors,
        stage_losses=outcome.losses, messages=messages,
        data={"failed_stage": outcome.stage, "errors": outcome.errors, "losses": outcome.losses},
    )  # fmt: skip


def resume_request(job: Job, catalog: Catalog, *, lost: bool) -> TransitionRequest:
    """Take over a processing job nobody runs: the next try of its stage, so any write of the
    try it replaces is refused from now on. ``lost`` (an expired lease) spends the loss budget;
    a restart of the Dispatcher itself does not."""
    pipeline = catalog.pipeline(job.pipeline)
    spec = pipeline.stages[pipeline.index_of(job.stage) if job.stage else 0]
    return TransitionRequest(
        job.job_id, JobStatus.PROCESSING, JobStatus.PROCESSING, stage=spec.stage,
        attempts=job.attempts + 1, expected_attempts=job.attempts, lease_s=spec.lease_s,
        stage_losses=job.stage_losses + (1 if lost else 0),
        data={"resumed_attempt": job.attempts, "lost": lost},
    )  # fmt: skip


def reject_requests(
    job: Job, settings: Settings, reason: str, error_type: str = "ConfigurationError"
) -> list[TransitionRequest]:
    """Fail a job the runtime cannot run (its pipeline is unknown, or its record has no
    readable source), with its dead letter: a queued one is started first, and the two writes
    apply in order in one batch; a processing one is failed where it is."""
    failure = StageFailure(error_type, reason, retryable=False)
    letter = _dead_letter(
        failure, job_id=job.job_id, tenant_id=job.tenant_id, doc_key=job.doc_key,
        stage="admission", attempts=0,
    )  # fmt: skip
    start = [TransitionRequest(job.job_id, JobStatus.QUEUED, JobStatus.PROCESSING, stage=None)]
    return [
        *(start if job.status is JobStatus.QUEUED else []),
        TransitionRequest(
            job.job_id,
            JobStatus.PROCESSING,
            JobStatus.FAILED,
            error=_error(failure, "admission"),
            messages=(job_letter(settings.topic_deadletter, letter),),
        ),
    ]


def messages_for(outcome: Outcome, catalog: Catalog, settings: Settings) -> list[OutboxMessage]:
    """Messages that follow an accepted outcome: results, mapping events, dead letters."""
    item = outcome.item
    out: list[OutboxMessage] = []
    pipeline = catalog.pipeline(item.pipeline)
    if isinstance(outcome, Advance | Finish) and _maps_now(outcome, pipeline):
        outputs = {**item.outputs, outcome.stage: outcome.output}
        mapping = MappingRequest(
            job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            metadata={"stages": sorted(outputs)},
        )  # fmt: skip
        out.append(_message(settings.topic_mapping, item.doc_key, mapping))
    if isinstance(outcome, Finish):
        result = IngestResult(
            job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            pipeline=item.pipeline, status=JobStatus.COMPLETED.value,
            outputs={**item.outputs, outcome.stage: outcome.output},
        )  # fmt: skip
        out.append(_message(settings.topic_results, item.doc_key, result))
    elif isinstance(outcome, Fail):
        letter = _dead_letter(
            outcome.failure, job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            stage=outcome.stage, attempts=outcome.attempt,
        )  # fmt: skip
        result = IngestResult(
            job_id=item.job_id, tenant_id=item.tenant_id, doc_key=item.doc_key,
            pipeline=item.pipeline, status=JobStatus.FAILED.value,
            error=_error(outcome.failure, outcome.stage).model_dump(),
        )  # fmt: skip
        out += [
            job_letter(settings.topic_deadletter, letter),
            _message(settings.topic_results, item.doc_key, result),
        ]
    return out


def _message(topic: str, key: str, event: Envelope) -> OutboxMessage:
    return OutboxMessage(topic, key, encode(event), event.event_id)


def _dead_letter(
    failure: StageFailure, *, job_id: str, tenant_id: str, doc_key: str, stage: str, attempts: int
) -> DeadLetter:
    return DeadLetter(
        reason=failure.message, error_type=failure.error_type, job_id=job_id,
        tenant_id=tenant_id, doc_key=doc_key, stage=stage, attempts=attempts,
    )  # fmt: skip


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
    """Rebuild the Dispatcher's view of a queued or processing job from its ledger record
    (raises ``ConfigurationError`` for a pipeline the catalog does not know, and
    ``BadJobRecordError`` for a record without a readable source or stage)."""
    if job.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
        return None
    pipeline = catalog.pipeline(job.pipeline)
    try:
        source = DocumentSource.model_validate(job.metadata["source"])
        stage_index = pipeline.index_of(job.stage) if job.stage else 0
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise BadJobRecordError(
            f"job {job.job_id} cannot run: no readable source or stage in its record ({exc})"[:300]
        ) from exc
    # a processing job resumes its current stage; a retried one the stage where it failed
    processing = job.status is JobStatus.PROCESSING
    return WorkItem(
        job_id=job.job_id, tenant_id=job.tenant_id, doc_key=job.doc_key, pipeline=job.pipeline,
        priority=job.priority, source=source,
        stage_index=stage_index, attempt=max(1, job.attempts) if processing else 1,
        metadata=dict(job.metadata.get("request", {})), outputs=dict(job.outputs),
        needs_start=not processing, errors=job.stage_errors if processing else 0,
        losses=job.stage_losses if processing else 0,
    )  # fmt: skip


def compensation_item(job: Job, catalog: Catalog) -> WorkItem | None:
    """The item whose effects a cancelled job's compensating stages take back (any status;
    ``None`` for a pipeline the catalog does not know or a record without a source)."""
    if job.pipeline not in catalog.pipelines:
        return None
    running = job.model_copy(update={"status": JobStatus.PROCESSING})
    try:
        return work_item_from_job(running, catalog)
    except BadJobRecordError:  # a record no stage could have run: nothing to take back
        return None


def _spec_of(outcome: Outcome, catalog: Catalog) -> StageSpec:
    item = outcome.item
    return catalog.pipeline(item.pipeline).stages[item.stage_index]


def _error(failure: StageFailure, stage: str) -> JobError:
    kind = "lost" if failure.lost else "error"
    return JobError(
        type=failure.error_type, message=failure.message, stage=stage,
        retryable=failure.retryable, kind=kind,
    )  # fmt: skip
