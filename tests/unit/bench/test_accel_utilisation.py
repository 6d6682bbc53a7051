"""The accelerator benchmark's arithmetic: slot utilisation over the window, and where the idle
time fell, second by second."""

from __future__ import annotations

import pytest

from benchmarks.accel.stage import utilisation


def test_utilisation_counts_busy_slot_seconds_over_slots_times_the_window() -> None:
    intervals = {
        1: [(100.0, 102.0, 4), (102.0, 103.0, 2)],  # busy the whole 3 s window
        2: [(100.5, 101.5, 2)],  # busy 1 s of it
    }
    out = utilisation(intervals, slots=2)
    assert out["window_s"] == 3.0 and out["busy_slot_s"] == 4.0
    assert out["slot_utilisation"] == pytest.approx(4 / 6, abs=1e-4)
    assert out["pages"] == 8 and out["calls"] == 3
    # second 0: slot 1 all of it, slot 2 its second half; second 1: slot 1 and half of slot 2
    assert out["busy_slots_by_second"] == [1.5, 1.5, 1.0]
    assert sum(out["busy_slots_by_second"]) == pytest.approx(out["busy_slot_s"])
