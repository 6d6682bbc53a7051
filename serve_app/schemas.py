"""Request and response models of the job API; the OpenAPI document is generated from these.

Inputs are ``extra="forbid"`` so clients cannot set server-owned fields (status, attempts,
tenant_id, job_id ...); outputs mirror the ledger's :class:`~ingest_ray.ledger.base.Job`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from ingest_ray.documents import document_label, document_title
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.ledger.base import Job, JobError, JobEvent
from ingest_ray.states import JobStatus
from ingest_ray.tenants import SourceStats, TenantLimits, TenantStats

MAX_ITEMS = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PipelineName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Priority = Annotated[int, Field(ge=0, le=9)]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- requests ---------------------------------------------------------------------------------


class SourceIn(_In):
    """The document to ingest: a DOI, an OpenAlex work id, a PDF URL or the text itself."""

    kind: Literal["doi", "openalex", "pdf_url", "text"]
    value: str = Field(min_length=1, max_length=4096)


class SubmitItem(_In):
    """One document to ingest."""

    source: SourceIn
    pipeline: PipelineName | None = None
    priority: Priority = 5
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_request(self, tenant_id: str, *, request_id: str | None = None) -> IngestRequest:
        """The Kafka request for this item, owned by ``tenant_id``."""
        source = DocumentSource(kind=SourceKind(self.source.kind), value=self.source.value)
        extra = {"request_id": request_id} if request_id else {}
        return IngestRequest(
            tenant_id=tenant_id,
            source=source,
            pipeline=self.pipeline,
            priority=self.priority,
            metadata=self.metadata,
            **extra,
        )


class SubmitBatch(_In):
    """Up to 100 documents in one call."""

    items: list[SubmitItem] = Field(min_length=1, max_length=MAX_ITEMS)


class ListQuery(BaseModel):
    """Filters and paging of ``GET /jobs`` (unknown query parameters are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: JobStatus | None = None
    stage: str | None = Field(default=None, min_length=1, max_length=64)
    pipeline: str | None = Field(default=None, min_length=1, max_length=64)
    doc_key: str | None = Field(default=None, min_length=1, max_length=1024)
    #: part of the doc key or of the document's title or file name (any case)
    q: str | None = Field(default=None, min_length=1, max_length=200)
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")

    @field_validator("created_after", "created_before")
    @classmethod
    def _clamp(cls, value: datetime | None) -> datetime | None:
        # job ids are ULIDs (epoch milliseconds): earlier instants mean "from the beginning"
        if value is None:
            return None
        try:
            return max(value.astimezone(UTC), _EPOCH)
        except OverflowError:
            return _EPOCH if value.year < 2000 else datetime(9999, 1, 1, tzinfo=UTC)


# --- responses --------------------------------------------------------------------------------


class SubmittedJob(_Out):
    """The job representing one submitted document (``created`` is False for a duplicate)."""

    job_id: str
    doc_key: str
    status: JobStatus
    created: bool


class SubmitResponse(_Out):
    """Answer of ``POST /jobs``, in input order."""

    jobs: list[SubmittedJob]


class JobSummary(_Out):
    """A job without its history, metadata and outputs (what lists show). ``document`` names
    the document for people: its title, else its file name, else its DOI, else ``doc_key``."""

    job_id: str
    tenant_id: str
    doc_key: str
    pipeline: str
    status: JobStatus
    stage: str | None
    priority: int
    attempts: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: JobError | None
    title: str | None
    document: str

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        """The summary of a ledger job."""
        return cls.model_validate(_fields(job, cls))


class AdmissionNote(_Out):
    """Why a job that could run now is waiting: its tenant is at its in-flight cap or over its
    hourly quota, or the source its next step calls has no rate-limit token yet. Such a job
    stays queued; it is never dropped."""

    waiting: bool
    reason: str | None


class JobDetail(JobSummary):
    """The full job: summary plus metadata, stage outputs and the event history."""

    started_at: datetime | None
    metadata: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    history: list[JobEvent]
    admission: AdmissionNote | None = None

    @classmethod
    def of(cls, job: Job) -> JobDetail:
        """The detail view of a ledger job."""
        return cls.model_validate(_fields(job, cls))


def _fields(job: Job, model: type[BaseModel]) -> dict[str, Any]:
    data = job.model_dump(include=set(model.model_fields))
    return {**data, "title": document_title(job), "document": document_label(job)}


class StreamGap(_Out):
    """The ``gap`` event of a job's event stream: events after ``missed_after`` were trimmed
    from the capped stream, so here is the job with its whole history; live events continue
    after ``resume_after`` (the event's id)."""

    missed_after: int
    resume_after: int
    job: JobDetail


class JobPage(_Out):
    """One page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[JobSummary]
    next_cursor: str | None


class ControlResponse(_Out):
    """Answer of cancel and retry: the job now, and whether this call changed it."""

    job: JobSummary
    changed: bool


class Stats(_Out):
    """Per-status job counts of the caller's tenant and recent completions per minute."""

    counts: dict[str, int]
    throughput_per_min: float


class TenantView(_Out):
    """The caller's tenant in the scheduler: its limits, its share of the dispatches against
    what its weight entitles it to, jobs in flight and waiting, quota use and queue waits.
    Other tenants are counted, never named."""

    tenant_id: str
    runtime: str
    #: when the Dispatcher published these figures (epoch seconds; None: no Dispatcher seen)
    updated_at: float | None
    limits: TenantLimits
    #: None while the Dispatcher has no recent job of this tenant
    stats: TenantStats | None
    active_tenants: int
    #: rate-limited sources jobs wait for (publisher hosts summed as ``host:*``)
    sources: list[SourceStats]
    backlog: int


class Health(_Out):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"


class KafkaCheck(_Out):
    """What the Kafka probe saw."""

    ok: bool
    brokers: int
    topics_missing: list[str]
    error: str | None


class RedisCheck(_Out):
    """Whether Redis answered a PING."""

    ok: bool
    error: str | None


class WorkerOut(_Out):
    """A worker's last heartbeat."""

    name: str
    kind: str
    host: str
    pid: int
    alive: bool
    updated_at: float
    lag: int
    in_flight: int
    last_error: str | None
    #: what is wrong right now, e.g. "redis unreachable since 12 s" or "dispatcher restarting"
    problems: list[str] = []


class Readiness(_Out):
    """Readiness: Redis and Kafka answer (workers are reported, not required)."""

    ready: bool
    kafka: KafkaCheck
    redis: RedisCheck
    workers: list[WorkerOut]


class ErrorDetail(_Out):
    """A machine-readable code, a readable message and, for validation errors, the details."""

    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(_Out):
    """Every error response."""

    error: ErrorDetail


class UploadForm(_In):
    """The form fields that may accompany an uploaded PDF."""

    priority: Priority = 5
    pipeline: PipelineName | None = None
