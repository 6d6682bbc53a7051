"""Models of the operator routes the dashboard uses: dead letters, search, charts, limits.

Like :mod:`serve_app.schemas`, inputs are ``extra="forbid"`` (queries ignore unknown
parameters) and the OpenAPI document is generated from these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ingest_ray.deadletters import LetterView
from ingest_ray.dlq import Outcome

LetterKindName = Literal["job", "message", "mapping"]
#: the most of a letter's value the API shows (the CLI shows all of it)
VALUE_PREVIEW = 4096


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Query(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class DeadLetterQuery(_Query):
    """The window of ``GET /deadletters``: the last ``last`` per partition, or since a time."""

    last: int = Field(default=50, ge=1, le=1000)
    since: AwareDatetime | None = None
    kind: LetterKindName | None = None


class DeadLetterOut(_Out):
    """One dead letter of the caller's tenant. ``letter`` (``partition:offset``) names it."""

    letter: str
    partition: int
    offset: int
    event_id: str
    kind: str
    reason: str
    error_type: str
    at: str
    origin_topic: str | None
    origin_partition: int | None
    origin_offset: int | None
    job_id: str | None
    doc_key: str | None
    #: the job's document by name (title, file name or DOI), when the letter names a job
    document: str | None
    stage: str | None
    attempts: int | None
    truncated: int | None
    value_bytes: int
    value_preview: str
    replayed: bool

    @classmethod
    def of(cls, letter: LetterView, *, replayed: bool, document: str | None) -> DeadLetterOut:
        """The API view of a letter (the value as text, cut to :data:`VALUE_PREVIEW`)."""
        origin = letter.origin
        return cls(
            letter=f"{letter.partition}:{letter.offset}", partition=letter.partition,
            offset=letter.offset, event_id=letter.event_id, kind=letter.kind,
            reason=letter.reason, error_type=letter.error_type, at=letter.at,
            origin_topic=origin.topic if origin else None,
            origin_partition=origin.partition if origin else None,
            origin_offset=origin.offset if origin else None,
            job_id=letter.subject.job_id, doc_key=letter.subject.doc_key, document=document,
            stage=letter.subject.stage, attempts=letter.subject.attempts,
            truncated=letter.truncated, value_bytes=len(letter.value),
            value_preview=letter.value[:VALUE_PREVIEW].decode("utf-8", errors="replace"),
            replayed=replayed,
        )  # fmt: skip


class DeadLetterPage(_Out):
    """The caller's dead letters in the window, oldest first."""

    items: list[DeadLetterOut]
    last: int
    since: datetime | None


class ReplayRequest(BaseModel):
    """Which letter to replay: where it sits in the dead-letter topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partition: int = Field(ge=0, le=100_000)
    offset: int = Field(ge=0, le=2**62)


class ReplayOut(_Out):
    """What the replay did: ``replayed`` now, or ``already_replayed`` before (nothing done)."""

    event_id: str
    outcome: Literal["replayed", "already_replayed"]
    detail: str

    @classmethod
    def of(cls, event_id: str, outcome: Outcome, detail: str) -> ReplayOut:
        """The answer for a replay that was not refused."""
        return cls(event_id=event_id, outcome=outcome.value, detail=detail)


class SearchQuery(_Query):
    """``GET /search``: words or a sentence, and how many hits."""

    q: str = Field(min_length=1, max_length=500)
    k: int = Field(default=10, ge=1, le=50)


class SearchHitOut(_Out):
    """One chunk found; ``job_id`` is the job that indexed its document (when known)."""

    doc_key: str
    job_id: str | None
    document: str
    title: str | None
    doi: str | None
    chunk_id: str
    section_path: list[str]
    page_start: int | None
    page_end: int | None
    snippet: str
    score: float


class SearchPage(_Out):
    """The hits of a hybrid (vector + full text) search over the caller's documents."""

    query: str
    hits: list[SearchHitOut]


class MinuteOut(_Out):
    """Jobs completed in one minute."""

    minute: datetime
    count: int


class PoolOut(_Out):
    """One stage pool: actors, calls in flight and the most at once (when reported)."""

    name: str
    size: int
    in_flight: int | None
    capacity: int | None
    utilisation: float | None


class Charts(_Out):
    """What the dashboard's charts draw: the caller's completions per minute and queued jobs
    by priority (``sampled`` when only the newest jobs were counted), and the runtime's pools
    from the ingest workers' heartbeats."""

    at: datetime
    completed_per_minute: list[MinuteOut]
    queue_by_priority: dict[str, int]
    pools: list[PoolOut]
    sampled: bool


class Info(_Out):
    """What a client needs to know before it submits: who it is, the upload cap, pipelines."""

    tenant_id: str
    scopes: list[str]
    max_upload_mb: int
    max_upload_bytes: int
    pipelines: list[str]
