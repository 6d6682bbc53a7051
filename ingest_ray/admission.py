"""Admission: turn a polled batch of raw request messages into ledger jobs.

This is the pure core of Kafka ingress: it never polls and never commits. Unreadable messages
become dead letters (with the reason and the origin coordinates), readable ones are created in
the ledger in one round trip (idempotent on tenant + doc_key). The caller stores the batch's
offsets only after :meth:`Admitter.admit` returned, i.e. after the ledger and the dead-letter
topic have both taken what they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ingest_ray.constants import (
    DLQ_HEADER_ERROR_TYPE,
    DLQ_HEADER_OFFSET,
    DLQ_HEADER_PARTITION,
    DLQ_HEADER_REASON,
    DLQ_HEADER_TOPIC,
)
from ingest_ray.errors import MessageDecodeError
from ingest_ray.events import DeadLetter, IngestRequest, SourceKind, decode
from ingest_ray.ledger.base import CreateOutcome, Ledger, NewJob


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed message, detached from the Kafka client."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request and the job that now represents it (``created`` is False for a duplicate)."""

    request: IngestRequest
    outcome: CreateOutcome
    record: RawRecord
    pipeline: str


@dataclass(slots=True)
class AdmissionBatch:
    """What one call to :meth:`Admitter.admit` did."""

    admitted: list[Admitted] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def new_jobs(self) -> list[Admitted]:
        """Jobs created by this batch (duplicates left out): these go on to the dispatcher."""
        return [a for a in self.admitted if a.outcome.created]


class DeadLetterSink(Protocol):
    """Where unreadable messages go; ``flush`` returns only once they are durable."""

    def publish(self, letter: DeadLetter, *, key: bytes | None, headers: dict[str, str]) -> None:
        """Queue one dead letter."""
        ...

    def flush(self) -> None:
        """Block until every queued dead letter is acknowledged (raise if one was not)."""
        ...


def default_pipeline(request: IngestRequest) -> str:
    """Pipeline for a request that names none: text already in hand goes ``auto``; anything
    whose text must come from a PDF (a PDF, or a DOI/OpenAlex work) goes ``two_phase``."""
    return "auto" if request.source.kind is SourceKind.TEXT else "two_phase"


def dead_letter_headers(letter: DeadLetter) -> dict[str, str]:
    """The headers every dead letter carries."""
    headers = {DLQ_HEADER_REASON: letter.reason, DLQ_HEADER_ERROR_TYPE: letter.error_type}
    if letter.origin_topic is not None:
        headers[DLQ_HEADER_TOPIC] = letter.origin_topic
        headers[DLQ_HEADER_PARTITION] = str(letter.origin_partition)
        headers[DLQ_HEADER_OFFSET] = str(letter.origin_offset)
    return headers


class Admitter:
    """Decode, dead-letter and admit one batch of request messages."""

    def __init__(
        self,
        ledger: Ledger,
        dead_letters: DeadLetterSink,
        *,
        pipeline_for: Callable[[IngestRequest], str] = default_pipeline,
    ) -> None:
        self._ledger = ledger
        self._dead_letters = dead_letters
        self._pipeline_for = pipeline_for

    def admit(self, records: Sequence[RawRecord]) -> AdmissionBatch:
        """Process ``records``; when this returns, every record is either a job or a dead letter."""
        batch = AdmissionBatch()
        readable: list[tuple[IngestRequest, RawRecord]] = []
        for record in records:
            request = self._read(record, batch)
            if request is not None:
                readable.append((request, record))
        if readable:
            jobs = [self._new_job(request) for request, _ in readable]
            outcomes = self._ledger.create_many(jobs)
            for (request, record), job, outcome in zip(readable, jobs, outcomes, strict=True):
                batch.admitted.append(Admitted(request, outcome, record, job.pipeline))
        if batch.dead_letters:
            self._dead_letters.flush()
        return batch

    def _read(self, record: RawRecord, batch: AdmissionBatch) -> IngestRequest | None:
        try:
            event = decode(record.value)
            if not isinstance(event, IngestRequest):
                raise MessageDecodeError(
                    f"expected ingest.request on {record.topic}, got {event.event_type}",
                    record.value or b"",
                )
        except MessageDecodeError as exc:
            letter = DeadLetter(
                reason=exc.reason,
                error_type=exc.error_type,
                origin_topic=record.topic,
                origin_partition=record.partition,
                origin_offset=record.offset,
                raw=exc.raw.decode("utf-8", errors="replace"),
            )
            self._dead_letters.publish(letter, key=record.key, headers=dead_letter_headers(letter))
            batch.dead_letters.append(letter)
            return None
        return event

    def _new_job(self, request: IngestRequest) -> NewJob:
        return NewJob(
            tenant_id=request.tenant_id,
            doc_key=request.doc_key,
            pipeline=request.pipeline or self._pipeline_for(request),
            priority=request.priority,
            metadata={
                "request_id": request.request_id,
                "source": request.source.model_dump(mode="json"),
                **({"request": request.metadata} if request.metadata else {}),
            },
        )
