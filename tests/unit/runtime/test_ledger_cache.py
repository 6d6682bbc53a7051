"""The Dispatcher's batching ledger writer on ledgers that answer when the test says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from ingest_ray.ledger.base import TransitionRequest
from ingest_ray.runtime.ledger_cache import BatchingWriter
from ingest_ray.states import JobStatus
from tests.unit.runtime.loop_fakes import sync


class GatedLedger:
    """Records each flush's requests; a flush returns only once its gate is opened."""

    def __init__(self) -> None:
        self.flushes: list[list[str]] = []
        self.gates: list[threading.Event] = []

    def transition_many(self, requests: Sequence[TransitionRequest]) -> list[str]:
        gate = threading.Event()
        self.flushes.append([r.job_id for r in requests])
        self.gates.append(gate)
        if not gate.wait(5):
            raise TimeoutError("the test never opened the gate")
        return [f"ok:{r.job_id}" for r in requests]


def _req(job: str) -> TransitionRequest:
    return TransitionRequest(job_id=job, expected=JobStatus.QUEUED, target=JobStatus.PROCESSING)


async def _until(cond: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.001)


@sync
async def test_a_lone_write_flushes_at_once_and_writes_queue_behind_a_busy_ledger() -> None:
    ledger = GatedLedger()
    writer = BatchingWriter(ledger, max_wait_s=0.5, max_flushes=2)  # type: ignore[arg-type]
    first = asyncio.create_task(writer.transition_many([_req("a")]))
    await _until(lambda: len(ledger.flushes) == 1)  # no linger: well before max_wait_s
    later = [asyncio.create_task(writer.transition_many([_req(j)])) for j in ("b", "c")]
    await asyncio.sleep(0.05)
    assert len(ledger.flushes) == 1  # b and c wait while the first flush is in flight
    ledger.gates[0].set()
    assert await first == ["ok:a"]
    await _until(lambda: len(ledger.flushes) == 2)
    assert ledger.flushes[1] == ["b", "c"]  # one round trip for both
    ledger.gates[1].set()
    assert [await t for t in later] == [["ok:b"], ["ok:c"]]
    assert writer.flushes == 2


@sync
async def test_a_full_batch_does_not_wait_for_the_linger() -> None:
    ledger = GatedLedger()
    writer = BatchingWriter(ledger, max_batch=2, max_wait_s=5.0, max_flushes=2)  # type: ignore[arg-type]
    first = asyncio.create_task(writer.transition_many([_req("a")]))
    await _until(lambda: len(ledger.flushes) == 1)
    full = asyncio.create_task(writer.transition_many([_req("b"), _req("c")]))
    await _until(lambda: len(ledger.flushes) == 2, timeout=2.0)
    for gate in ledger.gates:
        gate.set()
    assert await first == ["ok:a"]
    assert await full == ["ok:b", "ok:c"]


class InstantLedger:
    def transition_many(self, requests: Sequence[TransitionRequest]) -> list[str]:
        return [f"ok:{r.job_id}" for r in requests]


@sync
async def test_a_write_right_after_the_last_flush_still_gets_flushed() -> None:
    # the caller resumes before the finished flush loop's done callbacks run: a request queued
    # then must start a new loop (it used to find the old one still counted and wait forever)
    writer = BatchingWriter(InstantLedger(), max_flushes=1)  # type: ignore[arg-type]
    async with asyncio.timeout(2):  # awaited directly: wait_for's own task would hide it
        for job in ("a", "b", "c"):
            assert await writer.transition_many([_req(job)]) == [f"ok:{job}"]
    assert writer.flushes == 3


@sync
async def test_a_failed_flush_fails_its_callers_only() -> None:
    class Failing:
        def transition_many(self, requests: Sequence[TransitionRequest]) -> list[str]:
            raise ConnectionError("redis away")

    writer = BatchingWriter(Failing())  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await writer.transition_many([_req("a")])
    assert writer.flushes == 0
