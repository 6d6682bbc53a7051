"""Dead letters: one shape and one header set, whoever writes them.

Three kinds reach ``ingest.deadletter.v1``:

- ``job``: a job failed for good. The value is a :class:`~ingest_ray.events.DeadLetter` envelope.
- ``message``: a request that could not be admitted (unreadable, unknown pipeline, bad text).
- ``mapping``: a mapping event the MappingWorker could not apply.

For the last two the value is the original message's bytes, unchanged, so it can be shown raw,
edited and resent to its origin topic. When the original is too large for the dead-letter topic
only its first part is kept and ``x-dlq-truncated`` holds the original size. Every letter carries
every header of :data:`~ingest_ray.constants.DLQ_HEADERS` (empty where one does not apply), and a
stable ``x-dlq-event-id`` that ``ingest-ray dlq`` dedupes on.

Letters are :class:`~ingest_ray.ledger.base.OutboxMessage` values: they are recorded in the
ledger (with the failing transition, or on their own) and published by the outbox relay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial

from ingest_ray import constants as c
from ingest_ray.events import DeadLetter, encode
from ingest_ray.ids import new_id
from ingest_ray.ledger.base import OutboxMessage

#: Reasons are cut to this many characters in the header (the value keeps the whole record).
REASON_CAP = 2000
#: Room left for the record's own framing when a value must be cut to fit the topic.
FRAMING_BYTES = 1024


class LetterKind(StrEnum):
    """What failed."""

    JOB = "job"
    MESSAGE = "message"
    MAPPING = "mapping"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a consumed message came from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Subject:
    """The job and document a letter is about, where known."""

    job_id: str | None = None
    tenant_id: str | None = None
    doc_key: str | None = None
    stage: str | None = None
    attempts: int | None = None


def job_letter(topic: str, letter: DeadLetter) -> OutboxMessage:
    """The dead letter of a job that failed for good (value: the envelope)."""
    subject = Subject(
        letter.job_id, letter.tenant_id, letter.doc_key, letter.stage, letter.attempts
    )
    headers = _headers(
        LetterKind.JOB,
        event_id=letter.event_id,
        reason=letter.reason,
        error_type=letter.error_type,
        origin=None,
        subject=subject,
        truncated=None,
    )
    return OutboxMessage(topic, letter.doc_key, encode(letter), letter.event_id, headers)


def message_letter(
    topic: str,
    *,
    kind: LetterKind,
    value: bytes | None,
    key: bytes | None,
    origin: Origin | None,
    reason: str,
    error_type: str,
    subject: Subject | None = None,
    max_bytes: int = 1_000_000,
    event_id: str | None = None,
) -> OutboxMessage:
    """The dead letter of a consumed message: its original bytes (cut to fit ``max_bytes``).
    Pass an ``event_id`` derived from the origin so a redelivered message yields the same id."""
    event_id = event_id or new_id()
    raw = value or b""
    make = partial(
        _headers, kind, event_id=event_id, reason=reason, error_type=error_type, origin=origin,
        subject=subject or Subject(),
    )  # fmt: skip
    headers = make(truncated=None)
    room = max_bytes - FRAMING_BYTES - sum(len(k) + len(v.encode()) for k, v in headers)
    room -= len(key or b"") + 64  # the truncation header's own size
    if len(raw) > room:
        headers = make(truncated=len(raw))
        raw = raw[: max(room, 0)]
    text_key = key.decode("utf-8", errors="replace") if key is not None else None
    return OutboxMessage(topic, text_key, raw, event_id, headers)


def _headers(
    kind: LetterKind,
    *,
    event_id: str,
    reason: str,
    error_type: str,
    origin: Origin | None,
    subject: Subject,
    truncated: int | None,
) -> tuple[tuple[str, str], ...]:
    values = {
        c.DLQ_HEADER_KIND: kind.value,
        c.DLQ_HEADER_EVENT_ID: event_id,
        c.DLQ_HEADER_REASON: _clean(reason)[:REASON_CAP],
        c.DLQ_HEADER_ERROR_TYPE: error_type,
        c.DLQ_HEADER_TOPIC: origin.topic if origin else "",
        c.DLQ_HEADER_PARTITION: str(origin.partition) if origin else "",
        c.DLQ_HEADER_OFFSET: str(origin.offset) if origin else "",
        c.DLQ_HEADER_JOB_ID: subject.job_id or "",
        c.DLQ_HEADER_TENANT: subject.tenant_id or "",
        c.DLQ_HEADER_DOC_KEY: _clean(subject.doc_key or ""),
        c.DLQ_HEADER_STAGE: subject.stage or "",
        c.DLQ_HEADER_ATTEMPTS: "" if subject.attempts is None else str(subject.attempts),
        c.DLQ_HEADER_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
        c.DLQ_HEADER_TRUNCATED: "" if truncated is None else str(truncated),
    }
    return tuple((name, values[name]) for name in c.DLQ_HEADERS)


def _clean(text: str) -> str:
    """Text that encodes as UTF-8 (lone surrogates replaced)."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class LetterView:
    """A dead letter as read back from the topic (by ``ingest-ray dlq``)."""

    kind: str
    event_id: str
    reason: str
    error_type: str
    at: str
    origin: Origin | None
    subject: Subject
    truncated: int | None
    value: bytes
    key: bytes | None
    #: where the letter itself sits in the dead-letter topic
    partition: int = -1
    offset: int = -1


def read_letter(
    headers: Mapping[str, str],
    value: bytes | None,
    key: bytes | None = None,
    *,
    partition: int = -1,
    offset: int = -1,
) -> LetterView:
    """Interpret a consumed dead letter from its headers (see :data:`DLQ_HEADERS`)."""
    h = headers.get
    topic = h(c.DLQ_HEADER_TOPIC) or ""
    origin = (
        Origin(topic, int(h(c.DLQ_HEADER_PARTITION) or 0), int(h(c.DLQ_HEADER_OFFSET) or 0))
        if topic
        else None
    )
    attempts = h(c.DLQ_HEADER_ATTEMPTS) or ""
    subject = Subject(
        h(c.DLQ_HEADER_JOB_ID) or None,
        h(c.DLQ_HEADER_TENANT) or None,
        h(c.DLQ_HEADER_DOC_KEY) or None,
        h(c.DLQ_HEADER_STAGE) or None,
        int(attempts) if attempts.isdigit() else None,
    )
    truncated = h(c.DLQ_HEADER_TRUNCATED) or ""
    return LetterView(
        kind=h(c.DLQ_HEADER_KIND) or "",
        event_id=h(c.DLQ_HEADER_EVENT_ID) or "",
        reason=h(c.DLQ_HEADER_REASON) or "",
        error_type=h(c.DLQ_HEADER_ERROR_TYPE) or "",
        at=h(c.DLQ_HEADER_AT) or "",
        origin=origin,
        subject=subject,
        truncated=int(truncated) if truncated.isdigit() else None,
        value=value or b"",
        key=key,
        partition=partition,
        offset=offset,
    )
