"""Versioned message schemas: every Kafka value is one of these JSON envelopes.

Each envelope carries ``schema_version`` and an ``event_type`` discriminator. Values coming from
outside are validated strictly (frozen, ``extra="forbid"``); an unknown version is rejected with a
clear reason rather than guessed at. Keys are the ``doc_key`` so a document stays on one partition.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ingest_ray.errors import MessageDecodeError
from ingest_ray.ids import new_id

SCHEMA_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({SCHEMA_VERSION})

_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", re.IGNORECASE)


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the schemas use."""
    return datetime.now(UTC)


def normalize_doi(doi: str) -> str:
    """Strip resolver prefixes and lower-case: DOIs are case-insensitive."""
    return _DOI_PREFIX.sub("", doi.strip()).lower()


class SourceKind(StrEnum):
    """What a request points at."""

    DOI = "doi"
    OPENALEX = "openalex"
    PDF_URL = "pdf_url"
    PDF_PATH = "pdf_path"
    #: a PDF already in the artifact store, by sha256 (uploads): reachable from every node
    PDF_BLOB = "pdf_blob"
    TEXT = "text"


class DocumentSource(BaseModel):
    """The document to ingest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SourceKind
    value: str = Field(min_length=1, max_length=4096)

    def doc_key(self) -> str:
        """The default identity of the document, stable across submissions."""
        if self.kind is SourceKind.DOI:
            return f"doi:{normalize_doi(self.value)}"
        if self.kind is SourceKind.OPENALEX:
            return f"openalex:{self.value.rsplit('/', 1)[-1].upper()}"
        if self.kind is SourceKind.TEXT:
            return f"text:{hashlib.sha256(self.value.encode()).hexdigest()[:32]}"
        return f"{self.kind.value}:{self.value.strip()}"


class Envelope(BaseModel):
    """Fields every message shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    occurred_at: datetime = Field(default_factory=utcnow)

    @field_validator("schema_version", mode="before")
    @classmethod
    def _strict_version(cls, value: Any) -> Any:
        if type(value) is not int:  # ``true`` and ``1.0`` equal 1 in Python; they are not versions
            raise ValueError(f"schema_version must be an integer, got {value!r}")
        return value


_TENANT = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
_DOC_KEY = Annotated[str, Field(min_length=1, max_length=1024)]


class IngestRequest(Envelope):
    """Ask for one document to be ingested (topic ``ingest.requests.v1``)."""

    event_type: Literal["ingest.request"] = "ingest.request"
    request_id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    tenant_id: _TENANT = "default"
    doc_key: _DOC_KEY = ""
    source: DocumentSource
    pipeline: str | None = Field(default=None, max_length=64)
    priority: int = Field(default=5, ge=0, le=9)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _derive_doc_key(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and not data.get("doc_key")
            and isinstance(data.get("source"), dict | DocumentSource)
        ):
            source = data["source"]
            source = source if isinstance(source, DocumentSource) else DocumentSource(**source)
            data = {**data, "doc_key": source.doc_key()}
        return data

    @model_validator(mode="after")
    def _text_is_unicode(self) -> IngestRequest:
        """Every string must be valid Unicode (no lone surrogates such as ``\\ud800``) and hold
        no NUL (U+0000): a document's text fields end up in the index and the ledger, where one
        such string fails a whole write (PostgreSQL's text and jsonb cannot hold a NUL)."""
        for where, text in _strings({"doc_key": self.doc_key, "source": self.source.value,
                                     "metadata": self.metadata}):  # fmt: skip
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = text[exc.start : exc.end].encode("unicode_escape").decode()
                raise ValueError(f"{where}: {bad} is not valid Unicode text") from None
            if "\x00" in text:
                raise ValueError(f"{where}: holds a NUL character (\\u0000), which is not text")
        for where, number in _non_finite(self.metadata, "metadata"):
            raise ValueError(f"{where}: {number} is not a JSON number")
        return self


def _non_finite(value: Any, where: str) -> list[tuple[str, float]]:
    """Every NaN or infinity inside ``value`` (Python's JSON reader takes them; JSON has none,
    and PostgreSQL's jsonb refuses them), with where it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(where, value)]
    out: list[tuple[str, float]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _non_finite(inner, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            out += _non_finite(inner, f"{where}[{i}]")
    return out


def _strings(value: Any, where: str = "") -> list[tuple[str, str]]:
    """Every string inside ``value`` (keys included), with where it is."""
    if isinstance(value, str):
        return [(where, value)]
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{where}.{key}" if where else str(key)
            out += _strings(str(key), path) + _strings(inner, path)
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            out += _strings(inner, f"{where}[{i}]")
    return out


class IngestResult(Envelope):
    """A job reached a terminal state (topic ``ingest.results.v1``)."""

    event_type: Literal["ingest.result"] = "ingest.result"
    job_id: str
    tenant_id: str
    doc_key: str
    pipeline: str
    status: str
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None


class MappingRequest(Envelope):
    """An indexed document is ready for entity mapping (topic ``mapping.events.v1``)."""

    event_type: Literal["mapping.request"] = "mapping.request"
    job_id: str
    tenant_id: str
    doc_key: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeadLetter(Envelope):
    """A job that failed for good, or a message that could not be read (``ingest.deadletter.v1``).

    For an unreadable message, ``raw`` holds the original value (decoded as UTF-8 with
    replacement) and the origin coordinates travel in the Kafka headers as well.
    """

    event_type: Literal["ingest.deadletter"] = "ingest.deadletter"
    reason: str
    error_type: str
    job_id: str | None = None
    tenant_id: str | None = None
    doc_key: str | None = None
    stage: str | None = None
    attempts: int | None = None
    origin_topic: str | None = None
    origin_partition: int | None = None
    origin_offset: int | None = None
    raw: str | None = None


Event = Annotated[
    IngestRequest | IngestResult | MappingRequest | DeadLetter, Field(discriminator="event_type")
]
_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def encode(event: Envelope) -> bytes:
    """Serialise an envelope to its wire form (compact JSON, UTF-8)."""
    return event.model_dump_json().encode()


def decode(raw: bytes | None) -> Event:
    """Parse a wire value, raising :class:`MessageDecodeError` with the reason and raw bytes."""
    if raw is None:
        raise MessageDecodeError("empty value (tombstone)", b"")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageDecodeError(f"not JSON: {exc}", raw) from exc
    if not isinstance(data, dict):
        raise MessageDecodeError(f"envelope must be a JSON object, got {type(data).__name__}", raw)
    version = data.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:  # True and 1.0 are not 1
        raise MessageDecodeError(
            f"unsupported schema_version {version!r} (supported: {sorted(SUPPORTED_VERSIONS)})", raw
        )
    try:
        return _EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise MessageDecodeError(_summarise(exc), raw) from exc


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "envelope"
        parts.append(f"{where}: {err['msg']}")
    return "invalid envelope: " + "; ".join(parts)
