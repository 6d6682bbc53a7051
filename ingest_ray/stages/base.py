"""The stage interface: what every pipeline stage implements, whichever pool runs it.

A stage is a class constructed once per actor (expensive set-up such as loading a model happens
in ``__init__`` or lazily on first use, never per call) with async ``run`` / ``run_batch``.
Stages communicate through small JSON outputs kept in the ledger (``StageInput.outputs``) and
through artifacts in the blob store (referenced from those outputs by sha256). A stage decides
nothing about retries: it raises :class:`~ingest_ray.errors.RetryableError` or
:class:`~ingest_ray.errors.PermanentError` and the runtime does the rest.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from ingest_ray.errors import IngestError, JobCancelledError
from ingest_ray.events import DocumentSource


class CancelToken:
    """Set by the stage host when a job is cancelled while its stage runs. Built-in stages check
    it between pages, batches and outside calls, and before they commit anything."""

    def __init__(self) -> None:
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled."""
        return self._cancelled

    def cancel(self) -> None:
        """Mark the job cancelled (idempotent)."""
        self._cancelled = True


@dataclass(frozen=True)
class StageInput:
    """Everything a stage may know about the job it works on. Frozen: add fields, never mutate."""

    job_id: str
    tenant_id: str
    doc_key: str
    pipeline: str
    stage: str
    attempt: int
    source: DocumentSource
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: outputs of the stages that already ran for this job, by stage name
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: rate-limit sources whose token the Dispatcher took for this try (the stage host makes
    #: them current, so the stage's first call to each spends that token, not another one)
    reserved: tuple[str, ...] = ()
    #: set where the stage runs (never pickled across processes with a value)
    cancel: CancelToken | None = field(default=None, compare=False)

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled while this stage runs."""
        return self.cancel is not None and self.cancel.cancelled

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelledError` when the job was cancelled (call between steps)."""
        if self.cancelled:
            raise JobCancelledError(
                f"job {self.job_id} was cancelled during {self.stage}",
                job_id=self.job_id,
                stage=self.stage,
            )


@dataclass(frozen=True)
class StageOutput:
    """What a stage hands on. ``data`` must be JSON-serialisable and small (kilobytes): it is
    stored in the ledger; put anything large in the blob store and keep its sha256 here.

    ``finish`` ends the pipeline early with the job ``completed`` (for example a DOI with no
    open-access full text after its metadata was indexed); ``outcome`` says why, for people.
    """

    data: dict[str, Any] = field(default_factory=dict)
    finish: bool = False
    outcome: str | None = None


@runtime_checkable
class Stage(Protocol):
    """A unit of pipeline work. ``batch_size > 1`` means the pool may call ``run_batch``."""

    name: ClassVar[str]
    batch_size: ClassVar[int]

    async def run(self, item: StageInput) -> StageOutput:
        """Do the work for one job; raise a typed ``IngestError`` on failure."""
        ...

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Do the work for many jobs at once; one result (or error) per item, in order."""
        ...

    async def aclose(self) -> None:
        """Release clients, models and files."""
        ...


async def run_each(
    run: Callable[[StageInput], Awaitable[StageOutput]], items: Sequence[StageInput]
) -> list[StageOutput | IngestError]:
    """``run`` on each item in turn; a typed error fails that item only (the one-by-one
    ``run_batch`` of stages that do not batch)."""
    results: list[StageOutput | IngestError] = []
    for item in items:
        try:
            results.append(await run(item))
        except IngestError as exc:
            results.append(exc)
    return results


class BaseStage(abc.ABC):
    """Convenience base: ``run_batch`` runs items one by one, ``aclose`` does nothing."""

    name: ClassVar[str] = "base"
    batch_size: ClassVar[int] = 1

    @abc.abstractmethod
    async def run(self, item: StageInput) -> StageOutput:
        """Do the work for one job; raise a typed ``IngestError`` on failure."""

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        """Run each item; a typed error fails that item only."""
        return await run_each(self.run, items)

    async def aclose(self) -> None:  # noqa: B027 - an optional hook, a no-op unless overridden
        """Nothing to release by default."""
