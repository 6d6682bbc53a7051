"""Admission: turn requests into ledger jobs, the same way for Kafka, HTTP and the CLI.

:func:`new_job` is the one builder of a job from a request. :class:`Admitter` is the pure core of
Kafka intake: it never polls and never commits. A message that cannot become a job (unreadable,
an unknown pipeline, text that is not valid Unicode) becomes a dead letter carrying its original
bytes; the readable ones are created in the ledger in one round trip (idempotent on tenant +
doc_key). One the ledger refuses for good (its document's record is damaged) becomes a dead
letter too, with the ledger's reason, and the rest of the batch is admitted. Dead letters are
recorded in the ledger's outbox, so when :meth:`Admitter.admit` returns, every record is
durably either a job or a dead letter and the caller may store the batch's offsets. A dead
letter's ``event_id`` is derived from its origin (topic, partition, offset), so a redelivered
batch produces the same letter again, which consumers drop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from ingest_ray.deadletters import LetterKind, Origin, Subject, message_letter
from ingest_ray.errors import LedgerError, MessageDecodeError
from ingest_ray.events import IngestRequest, SourceKind, decode
from ingest_ray.ledger.base import CreateOutcome, Ledger, NewJob, OutboxMessage


@dataclass(frozen=True)
class RawRecord:
    """A consumed message, detached from the Kafka client."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Admitted:
    """A request and the job that now represents it (``created`` is False for a duplicate)."""

    request: IngestRequest
    outcome: CreateOutcome
    record: RawRecord
    pipeline: str


@dataclass(frozen=True)
class Rejected:
    """A record that became a dead letter, and why."""

    record: RawRecord
    reason: str
    error_type: str
    letter: OutboxMessage


@dataclass
class AdmissionBatch:
    """What one call to :meth:`Admitter.admit` did."""

    admitted: list[Admitted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def new_jobs(self) -> list[Admitted]:
        """Jobs created by this batch (duplicates left out): these go on to the dispatcher."""
        return [a for a in self.admitted if a.outcome.created]


_TENANT = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class UnknownPipelineError(MessageDecodeError):
    """The request names a pipeline this runtime does not have."""


def default_pipeline(request: IngestRequest) -> str:
    """Pipeline for a request that names none: text already in hand goes ``auto``; anything
    whose text must come from a PDF (a PDF, or a DOI/OpenAlex work) goes ``two_phase``."""
    return "auto" if request.source.kind is SourceKind.TEXT else "two_phase"


def new_job(request: IngestRequest, pipeline: str | None = None) -> NewJob:
    """The ledger job for ``request`` (Kafka, HTTP and the CLI all build it here)."""
    return NewJob(
        tenant_id=request.tenant_id,
        doc_key=request.doc_key,
        pipeline=pipeline or request.pipeline or default_pipeline(request),
        priority=request.priority,
        metadata={
            "request_id": request.request_id,
            "source": request.source.model_dump(mode="json"),
            **({"request": request.metadata} if request.metadata else {}),
        },
    )


def check_pipeline(request: IngestRequest, known: Collection[str] | None) -> str:
    """The request's pipeline, raising :class:`UnknownPipelineError` when it is not known."""
    pipeline = request.pipeline or default_pipeline(request)
    if known is not None and pipeline not in known:
        names = ", ".join(sorted(known))
        raise UnknownPipelineError(f"unknown pipeline {pipeline!r} (known: {names})", b"")
    return pipeline


class Admitter:
    """Decode, dead-letter and admit one batch of request messages."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        dead_letter_topic: str,
        pipelines: Collection[str] | None = None,
        max_message_bytes: int = 1_000_000,
        pipeline_for: Callable[[IngestRequest], str] = default_pipeline,
    ) -> None:
        self._ledger = ledger
        self._topic = dead_letter_topic
        self._pipelines = None if pipelines is None else frozenset(pipelines)
        self._max_bytes = max_message_bytes
        self._pipeline_for = pipeline_for

    def admit(self, records: Sequence[RawRecord]) -> AdmissionBatch:
        """Process ``records``; when this returns, every record is durably a job or a dead
        letter. Raises (nothing half-done is acknowledged) when the ledger is away."""
        batch = AdmissionBatch()
        readable: list[tuple[IngestRequest, RawRecord, NewJob]] = []
        for record in records:
            try:
                request = _read(record)
                pipeline = check_pipeline(request, self._pipelines)
            except MessageDecodeError as exc:
                batch.rejected.append(self._reject(record, exc))
                continue
            readable.append((request, record, new_job(request, pipeline)))
        if batch.rejected:
            self._ledger.outbox_put([r.letter for r in batch.rejected])
        if readable:
            outcomes = self._ledger.create_many([job for _, _, job in readable])
            refused: list[Rejected] = []
            for (request, record, job), outcome in zip(readable, outcomes, strict=True):
                if isinstance(outcome, LedgerError):
                    refused.append(self._refused(request, record, outcome))
                else:
                    batch.admitted.append(Admitted(request, outcome, record, job.pipeline))
            if refused:
                self._ledger.outbox_put([r.letter for r in refused])
                batch.rejected += refused
        return batch

    def _reject(self, record: RawRecord, exc: MessageDecodeError) -> Rejected:
        subject = Subject(tenant_id=_tenant_of(record.value))
        return self._letter(record, exc.reason, exc.error_type, subject)

    def _refused(self, request: IngestRequest, record: RawRecord, exc: LedgerError) -> Rejected:
        """A readable request the ledger would not create (its document's record is damaged):
        a dead letter, so the rest of the batch goes on; retryable refusals raise instead
        (the batch is read again)."""
        if exc.retryable:
            raise exc
        subject = Subject(tenant_id=request.tenant_id, doc_key=request.doc_key)
        return self._letter(record, exc.message, exc.error_type, subject)

    def _letter(
        self, record: RawRecord, reason: str, error_type: str, subject: Subject
    ) -> Rejected:
        letter = message_letter(
            self._topic, kind=LetterKind.MESSAGE, value=record.value, key=record.key,
            origin=Origin(record.topic, record.partition, record.offset), reason=reason,
            error_type=error_type, subject=subject, max_bytes=self._max_bytes,
            event_id=f"dlq:{record.topic}:{record.partition}:{record.offset}",
        )  # fmt: skip
        return Rejected(record, reason, error_type, letter)


def _tenant_of(value: bytes | None) -> str | None:
    """The tenant a refused message names, when it is readable enough to say (so the tenant's
    API shows its own dead letters); ``None`` otherwise."""
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    tenant = data.get("tenant_id", "default") if isinstance(data, dict) else None
    return tenant if isinstance(tenant, str) and _TENANT.fullmatch(tenant) else None


def _read(record: RawRecord) -> IngestRequest:
    event = decode(record.value)
    if not isinstance(event, IngestRequest):
        raise MessageDecodeError(
            f"expected ingest.request on {record.topic}, got {event.event_type}",
            record.value or b"",
        )
    return event
