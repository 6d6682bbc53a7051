"""Submission: the ledger job first (idempotent on tenant + doc_key), then the Kafka request.

The job is built by :func:`ingest_ray.admission.new_job`, as Kafka admission builds it, so
ingress, the Dispatcher and the stages cannot tell an HTTP job from a Kafka one; a pipeline the
runtime does not know is refused before anything is written (422).
Ingress re-admits the published request as a duplicate and hands the queued job to the
Dispatcher. A document whose job already exists and is still queued is published again: that
heals a crash between the ledger write and the publish.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ingest_ray.admission import check_pipeline, new_job
from ingest_ray.errors import LedgerError
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka import Producer
from ingest_ray.ledger.base import CreateOutcome, Ledger
from ingest_ray.states import JobStatus
from ingest_ray.storage.blobs import BlobStore


@dataclass(frozen=True, slots=True)
class Submitted:
    """One request and the job that represents it."""

    request: IngestRequest
    outcome: CreateOutcome


class Submitter:
    """Create jobs and publish their requests (one producer per replica, flushed per call)."""

    def __init__(
        self,
        ledger: Ledger,
        producer: Producer,
        topic: str,
        blobs: BlobStore,
        *,
        pipelines: Collection[str] | None = None,
    ) -> None:
        self._pipelines = pipelines
        self._ledger = ledger
        self._producer = producer
        self._topic = topic
        self._blobs = blobs

    def submit(self, requests: Sequence[IngestRequest]) -> list[Submitted]:
        """Create the jobs in one round trip, then publish and flush (raises
        ``KafkaDeliveryError`` if the broker did not take them; the jobs stay queued). A job
        the ledger refused (its document's record is damaged) raises that refusal once the
        others are published, so a request naming it fails as a whole and names the job."""
        jobs = [new_job(r, check_pipeline(r, self._pipelines)) for r in requests]
        outcomes = self._ledger.create_many(jobs)
        submitted: list[Submitted] = []
        refused: LedgerError | None = None
        sent = 0
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, LedgerError):
                refused = refused or outcome
                continue
            if outcome.created or outcome.status is JobStatus.QUEUED:
                self._producer.send(self._topic, request, key=request.doc_key)
                sent += 1
            submitted.append(Submitted(request, outcome))
        if sent:
            self._producer.flush()
        if refused is not None:
            raise refused
        return submitted

    def pdf_request(
        self,
        tenant_id: str,
        data: bytes,
        *,
        priority: int,
        pipeline: str | None,
        file_name: str | None = None,
    ) -> IngestRequest:
        """Store an uploaded PDF by content and make the request that points at it (by digest,
        so a stage on any node finds it in the shared store; the file's name goes with it, to
        name the document until its title is known)."""
        digest = self._blobs.put(data)
        return IngestRequest(
            tenant_id=tenant_id,
            doc_key=f"pdf:sha256:{digest}",
            source=DocumentSource(kind=SourceKind.PDF_BLOB, value=digest),
            pipeline=pipeline,
            priority=priority,
            metadata={"file_name": file_name} if file_name else {},
        )
