"""One root error for the whole engine, split into retryable and permanent.

Whether to retry travels on the exception (as in Temporal's SDK): callers never guess from the
message. ``job_id``, ``stage`` and ``retry_after`` are optional context every error can carry.
"""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    """Root of every error ingest_ray raises on purpose."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        stage: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id
        self.stage = stage
        self.retry_after = retry_after

    @property
    def error_type(self) -> str:
        """A stable name for logs, dead letters and the ledger's ``error.type``."""
        return type(self).__name__

    def __reduce__(self) -> tuple[Any, ...]:
        # keep keyword-only context (job_id, stage, ...) across pickling, e.g. Ray calls
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[IngestError], args: tuple[Any, ...], state: dict[str, Any]) -> IngestError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class RetryableError(IngestError):
    """A failure that may go away: timeouts, 429/503, a broker or server briefly away."""

    retryable = True


class PermanentError(IngestError):
    """A failure that will not go away by trying again: bad input, 404, an illegal transition."""

    retryable = False


# --- configuration and services -------------------------------------------------------------


class ConfigurationError(PermanentError):
    """Settings are missing or contradict each other."""


class ServiceUnavailableError(RetryableError):
    """Kafka, Redis or another service did not answer in time."""


class StackError(IngestError):
    """The local stack launcher could not start, stop or find a service."""


# --- messages ---------------------------------------------------------------------------------


class MessageDecodeError(PermanentError):
    """A message value is not a valid envelope. Carries the raw bytes so nothing is lost."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(f"undecodable message: {reason}")
        self.reason = reason
        self.raw = raw


class KafkaDeliveryError(RetryableError):
    """The broker did not acknowledge a produced message. ``permanent`` is set when trying again
    cannot help (the message is too large for the topic, the topic may not be written)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# --- jobs -------------------------------------------------------------------------------------


class JobCancelledError(PermanentError):
    """The job was cancelled while a stage worked on it; the stage stopped where it checked."""


# --- ledger -----------------------------------------------------------------------------------


class LedgerError(IngestError):
    """Base of the ledger's own errors."""


class BadJobRecordError(LedgerError, PermanentError):
    """A job record the runtime cannot run (no readable source): the job fails with this reason
    instead of stopping the Dispatcher that recovers it."""


class JobNotFoundError(LedgerError, PermanentError):
    """No job with this id (for this tenant)."""


class IllegalTransitionError(LedgerError, PermanentError):
    """The state machine does not allow moving from this status to that one."""


class DamagedRecordError(LedgerError, PermanentError):
    """The ledger raised while writing or reading this job: its stored record is damaged (in
    Redis, a key of the wrong type, for example). Only this job is refused; the record is left
    as it is for an operator, and the other jobs of the same batch still apply."""


class StaleTransitionError(LedgerError, PermanentError):
    """The job is no longer in the state the caller expected: someone else moved it first."""

    def __init__(self, message: str, *, job_id: str, actual_status: str | None = None) -> None:
        super().__init__(message, job_id=job_id)
        self.actual_status = actual_status
