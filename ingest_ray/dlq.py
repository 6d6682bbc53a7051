"""Reading and replaying dead letters (``ingest.deadletter.v1``), for the CLI and the API.

Letters are read from a bounded window of the topic (:mod:`ingest_ray.kafka.window`), read
back through :func:`ingest_ray.deadletters.read_letter` and deduplicated by their
``x-dlq-event-id`` (the outbox may publish a letter twice). Replaying a letter:

- ``job``: the job is queued again where it failed (:meth:`JobControl.retry`);
- ``mapping``: the original mapping event is sent to the mapping topic again;
- ``message``: the original request is sent to its origin topic again, when it is a valid
  envelope (edit it first otherwise: :meth:`Replayer.resend`).

Each replayed or resent letter is remembered in Redis (``RedisKeys.applied("dlq", event_id)``),
so a second replay of the same letter does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import redis

from ingest_ray import constants as c
from ingest_ray.config import Settings
from ingest_ray.control import JobControl
from ingest_ray.deadletters import LetterKind, LetterView, Origin, Subject, read_letter
from ingest_ray.errors import IllegalTransitionError, IngestError, JobNotFoundError
from ingest_ray.events import DeadLetter, decode
from ingest_ray.kafka.producer import Producer
from ingest_ray.kafka.window import RawMessage, read_at, read_window
from ingest_ray.keys import RedisKeys

#: how long a replayed letter is remembered (a letter older than this is long gone anyway)
APPLIED_TTL_S = 90 * 24 * 3600
SCOPE = "dlq"


def view(message: RawMessage) -> LetterView:
    """A consumed message as a letter; letters written before every letter carried the
    ``x-dlq-*`` headers are read from their envelope."""
    if message.headers.get(c.DLQ_HEADER_KIND):
        return read_letter(
            message.headers, message.value, message.key,
            partition=message.partition, offset=message.offset,
        )  # fmt: skip
    return _legacy(message)


def _legacy(message: RawMessage) -> LetterView:
    try:
        letter = decode(message.value)
    except IngestError:
        letter = None
    if not isinstance(letter, DeadLetter):
        return LetterView(
            kind=LetterKind.MESSAGE.value, event_id=f"{message.partition}:{message.offset}",
            reason="not a dead letter envelope", error_type="", at="", origin=None,
            subject=Subject(), truncated=None, value=message.value or b"", key=message.key,
            partition=message.partition, offset=message.offset,
        )  # fmt: skip
    kind = LetterKind.JOB if letter.job_id and letter.stage != "mapping" else LetterKind.MESSAGE
    if letter.stage == "mapping":
        kind = LetterKind.MAPPING
    origin = (
        Origin(letter.origin_topic, letter.origin_partition or 0, letter.origin_offset or 0)
        if letter.origin_topic
        else None
    )
    value = (message.value or b"") if kind is LetterKind.JOB else (letter.raw or "").encode()
    return LetterView(
        kind=kind.value, event_id=letter.event_id, reason=letter.reason,
        error_type=letter.error_type, at=letter.occurred_at.isoformat(), origin=origin,
        subject=Subject(letter.job_id, letter.tenant_id, letter.doc_key, letter.stage,
                        letter.attempts),
        truncated=None, value=value, key=message.key, partition=message.partition,
        offset=message.offset,
    )  # fmt: skip


def dedupe(letters: Iterable[LetterView]) -> list[LetterView]:
    """One letter per event id (the first seen), in the given order."""
    seen: set[str] = set()
    out = []
    for letter in letters:
        if letter.event_id not in seen:
            seen.add(letter.event_id)
            out.append(letter)
    return out


def list_letters(
    settings: Settings,
    *,
    last: int | None = 50,
    since: datetime | None = None,
    tenant_id: str | None = None,
) -> list[LetterView]:
    """Deduplicated letters of the window, oldest first; with ``tenant_id``, only that
    tenant's (letters whose tenant is unknown are an operator's business)."""
    messages = read_window(settings.kafka_bootstrap_servers, settings.topic_deadletter,
                           last=last, since=since)  # fmt: skip
    letters = dedupe(view(m) for m in messages)
    if tenant_id is not None:
        letters = [x for x in letters if x.subject.tenant_id == tenant_id]
    return letters


def letter_at(settings: Settings, partition: int, offset: int) -> LetterView | None:
    """The letter at ``partition``/``offset`` of the dead-letter topic."""
    found = read_at(settings.kafka_bootstrap_servers, settings.topic_deadletter, partition, offset)
    return view(found) if found is not None else None


class Outcome(StrEnum):
    """What a replay did."""

    REPLAYED = "replayed"
    ALREADY = "already_replayed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """The outcome of one replay, with a sentence for people."""

    event_id: str
    outcome: Outcome
    detail: str


class Replayer:
    """Replays and resends letters, each at most once (marks in Redis)."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        control: JobControl,
        producer: Producer,
    ) -> None:
        self.settings = settings
        self._r = client
        self._keys = RedisKeys(settings.redis_prefix)
        self._control = control
        self._producer = producer

    def replayed(self, event_id: str) -> bool:
        """Whether the letter was replayed or resent already."""
        return bool(self._r.exists(self._keys.applied(SCOPE, event_id)))

    def replay(self, letter: LetterView, *, tenant_id: str | None = None) -> ReplayResult:
        """Replay ``letter`` as its kind says (see the module's docstring)."""
        if letter.kind == LetterKind.JOB.value:
            return self._once(letter, lambda: self._retry_job(letter, tenant_id))
        if letter.kind == LetterKind.MAPPING.value:
            topic = letter.origin.topic if letter.origin else self.settings.topic_mapping
            return self._send(letter, letter.value, topic)
        return self._send(letter, letter.value, letter.origin.topic if letter.origin else "")

    def resend(self, letter: LetterView, value: bytes) -> ReplayResult:
        """Send an edited ``value`` of a message letter to the letter's origin topic."""
        if letter.kind == LetterKind.JOB.value:
            return self._refused(letter, "a job letter is replayed, not resent")
        topic = letter.origin.topic if letter.origin else ""
        if letter.kind == LetterKind.MAPPING.value:
            topic = topic or self.settings.topic_mapping
        return self._send(letter, value, topic, edited=True)

    # --- the work -----------------------------------------------------------------------------

    def _send(
        self, letter: LetterView, value: bytes, topic: str, *, edited: bool = False
    ) -> ReplayResult:
        if not topic:
            return self._refused(letter, "the letter does not say which topic it came from")
        if letter.truncated is not None and not edited:
            return self._refused(letter, f"only part of the original ({letter.truncated} bytes) "
                                         "was kept; resend it edited")  # fmt: skip
        try:
            decode(value)
        except IngestError as exc:
            hint = "" if edited else " (edit it: ingest-ray dlq resend --edit)"
            return self._refused(letter, f"not a valid envelope: {exc}{hint}")
        key = letter.key.decode("utf-8", errors="replace") if letter.key is not None else None

        def send() -> str:
            headers = {"x-dlq-replay-of": letter.event_id}
            self._producer.send_raw(topic, value, key=key, headers=headers)
            self._producer.flush()
            return f"sent to {topic}"

        return self._once(letter, send)

    def _retry_job(self, letter: LetterView, tenant_id: str | None) -> str:
        job_id = letter.subject.job_id
        if not job_id:
            raise IllegalTransitionError("the letter names no job")
        result = self._control.retry(job_id, tenant_id=tenant_id)
        state = "queued again" if result.changed else f"already {result.job.status.value}"
        return f"job {job_id} {state} at stage {result.job.stage}"

    def _once(self, letter: LetterView, action: Callable[[], str]) -> ReplayResult:
        mark = self._keys.applied(SCOPE, letter.event_id)
        if not self._r.set(mark, letter.kind, nx=True, ex=APPLIED_TTL_S):
            return ReplayResult(letter.event_id, Outcome.ALREADY, "replayed before: nothing done")
        try:
            detail = action()
        except (IllegalTransitionError, JobNotFoundError) as exc:
            self._r.delete(mark)
            return self._refused(letter, str(exc))
        except BaseException:
            self._r.delete(mark)  # not done: a later replay may try again
            raise
        return ReplayResult(letter.event_id, Outcome.REPLAYED, detail)

    @staticmethod
    def _refused(letter: LetterView, why: str) -> ReplayResult:
        return ReplayResult(letter.event_id, Outcome.REFUSED, why)
