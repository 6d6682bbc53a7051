"""The dead-letter window's offset plan, dedupe by event id, and stop signals (no services)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ingest_ray import deadletters
from ingest_ray.deadletters import LetterKind, Origin
from ingest_ray.dlq import dedupe, view
from ingest_ray.events import DeadLetter, encode
from ingest_ray.kafka.window import PartitionRange, RawMessage, plan
from ingest_ray.signals import StopSignals


def test_window_plan_reads_the_last_n_per_partition_never_from_the_start() -> None:
    marks = {0: (0, 1000), 1: (400, 410), 2: (5, 5)}
    assert plan(marks, last=50) == [PartitionRange(0, 950, 1000), PartitionRange(1, 400, 410)]
    assert plan(marks, last=None) == [PartitionRange(0, 0, 1000), PartitionRange(1, 400, 410)]


def test_window_plan_since_uses_the_later_start_and_skips_old_partitions() -> None:
    marks = {0: (0, 1000), 1: (0, 10)}
    since = {0: 990, 1: -1}  # partition 1 has nothing that recent
    assert plan(marks, last=None, since_offsets=since) == [PartitionRange(0, 990, 1000)]
    assert plan(marks, last=5, since_offsets=since) == [PartitionRange(0, 995, 1000)]


def _raw(m: object, offset: int) -> RawMessage:
    letter = m  # an OutboxMessage
    return RawMessage(
        "dlq",
        0,
        offset,
        letter.key.encode() if letter.key else None,  # type: ignore[attr-defined]
        letter.value,
        dict(letter.headers),
        offset,
    )  # type: ignore[attr-defined]


def test_dlq_views_letters_and_dedupes_by_event_id() -> None:
    job = deadletters.job_letter("dlq", DeadLetter(reason="r", error_type="E", job_id="J",
                                                   doc_key="doi:1", stage="embed"))  # fmt: skip
    msg = deadletters.message_letter("dlq", kind=LetterKind.MESSAGE, value=b"\xff", key=b"k",
                                     origin=Origin("req", 1, 7), reason="bad", error_type="E")  # fmt: skip
    letters = dedupe(view(_raw(m, i)) for i, m in enumerate([job, msg, job]))
    assert [x.kind for x in letters] == ["job", "message"]
    assert letters[1].value == b"\xff" and letters[1].origin == Origin("req", 1, 7)
    legacy = DeadLetter(reason="old", error_type="E", stage="mapping", job_id="J2", raw="{}")
    old = view(RawMessage("dlq", 0, 9, None, encode(legacy), {}, 0))
    assert (old.kind, old.value, old.event_id) == ("mapping", b"{}", legacy.event_id)


def test_stop_signals_let_a_start_finish_then_interrupt_a_slow_one() -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        quick = StopSignals(start_grace_s=5.0).install()
        os.kill(os.getpid(), signal.SIGTERM)  # while starting: no interruption yet
        assert quick.is_set() and quick.exit_code() == 128 + signal.SIGTERM
        quick.started()  # the start finished in time: a graceful stop follows
        time.sleep(0.1)

        slow = StopSignals(start_grace_s=0.2).install()
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            time.sleep(5)  # a start that does not finish: interrupted after the grace
        assert slow.received is signal.SIGINT

        running = StopSignals().install()
        running.started()
        os.kill(os.getpid(), signal.SIGINT)  # only asks for a stop now
        assert running.wait(5.0) and running.received is signal.SIGINT
        with pytest.raises(KeyboardInterrupt):  # a second signal cuts a drain short
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
