from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest_ray.ids import id_ceiling, id_floor, new_id
from ingest_ray.kafka.consumer import _next_offsets


class Msg:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._t, self._p, self._o = topic, partition, offset

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


def test_ids_sort_by_creation_and_bounds_bracket_them() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    ids = [new_id() for _ in range(50)]
    after = datetime.now(UTC) + timedelta(milliseconds=5)
    assert len(set(ids)) == 50
    assert all(id_floor(before) <= i <= id_ceiling(after) for i in ids)
    assert id_ceiling(before) < min(ids)


def test_next_offsets_stores_one_past_the_highest_per_partition() -> None:
    msgs = [Msg("a", 0, 5), Msg("a", 0, 3), Msg("a", 1, 9), Msg("b", 0, 0)]
    got = {(tp.topic, tp.partition): tp.offset for tp in _next_offsets(msgs)}  # type: ignore[arg-type]
    assert got == {("a", 0): 6, ("a", 1): 10, ("b", 0): 1}
