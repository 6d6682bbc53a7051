from __future__ import annotations

from typing import Any

from ingest_ray.admission import Admitter
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind, encode
from ingest_ray.ledger import JobFilter
from ingest_ray.pipelines.builtin import builtin_catalog, builtin_pools
from ingest_ray.runtime.ingress import IngressLoop
from ingest_ray.runtime.work import WorkItem
from ingest_ray.testing import InMemoryLedger


class Msg:
    def __init__(self, value: bytes, offset: int) -> None:
        self._v, self._o = value, offset

    def topic(self) -> str:
        return "req"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return self._v


class FakeConsumer:
    """Delivers batches in order; ``seek_back`` puts a batch back at the front."""

    def __init__(self, batches: list[list[Msg]]) -> None:
        self.batches = batches
        self.stored: list[int] = []
        self.paused = False
        self.calls: list[str] = []
        self.rewound: list[list[int]] = []
        self._last: list[Msg] = []

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Any]:
        self.calls.append("poll")
        self._last = self.batches.pop(0) if self.batches and not self.paused else []
        return self._last

    def seek_back(self, messages: Any) -> int:
        self.rewound.append([m.offset() for m in messages])
        self.batches.insert(0, list(messages))
        return 1

    def store(self, messages: Any) -> None:
        self.stored += [m.offset() for m in messages]

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


def _admitter(ledger: InMemoryLedger) -> Admitter:
    return Admitter(ledger, dead_letter_topic="dlq", pipelines={"auto", "two_phase"})


def _msg(doc: str, offset: int) -> Msg:
    req = IngestRequest(doc_key=doc, source=DocumentSource(kind=SourceKind.TEXT, value=doc))
    return Msg(encode(req), offset)


def test_ingress_stores_offsets_only_after_the_dispatcher_took_the_batch() -> None:
    order: list[str] = []
    consumer = FakeConsumer([[_msg("a", 0), _msg("b", 1)]])

    def submit(items: list[WorkItem], recheck: list[str]) -> bool:
        order.append(f"submit:{len(items)}:stored={len(consumer.stored)}")
        return False

    loop = IngressLoop(consumer, _admitter(InMemoryLedger()), submit, lambda: False)
    assert loop.step() == 2
    assert order == ["submit:2:stored=0"]
    assert consumer.stored == [0, 1]


def test_ingress_pauses_on_backpressure_and_resumes_below_the_low_watermark() -> None:
    consumer = FakeConsumer([[_msg("a", 0)], [_msg("b", 1)]])
    pressure = {"paused": True}
    loop = IngressLoop(
        consumer, _admitter(InMemoryLedger()),
        handover=lambda items, recheck: pressure["paused"], is_paused=lambda: pressure["paused"],
        poll_s=0.0, sleep=lambda s: None,
    )  # fmt: skip
    loop.step()
    assert consumer.paused
    assert loop.stats.paused
    assert loop.step() == 0  # still paused: nothing fetched
    pressure["paused"] = False
    assert loop.step() == 1
    assert not consumer.paused
    assert consumer.stored == [0, 1]


def test_ingress_rechecks_queued_duplicates_instead_of_submitting_them() -> None:
    ledger = InMemoryLedger()
    seen: list[tuple[int, list[str]]] = []
    consumer = FakeConsumer([[_msg("a", 0)], [_msg("a", 1)]])
    loop = IngressLoop(
        consumer, _admitter(ledger),
        handover=lambda items, recheck: seen.append((len(items), recheck)) or False,
        is_paused=lambda: False,
    )  # fmt: skip
    loop.step()
    loop.step()
    assert seen[0] == (1, [])
    assert seen[1][0] == 0
    assert len(seen[1][1]) == 1
    assert loop.stats.duplicates == 1


def test_ingress_reads_a_batch_again_when_admission_fails_and_never_commits_past_it() -> None:
    ledger = InMemoryLedger()
    consumer = FakeConsumer([[_msg("a", 0), _msg("b", 1)], [_msg("c", 2)]])
    naps: list[float] = []
    loop = IngressLoop(consumer, _admitter(ledger), handover=None, sleep=naps.append)
    ledger.down = ConnectionError("redis is away")
    assert loop.step() == 0 and loop.step() == 0
    assert consumer.stored == []  # nothing acknowledged while the ledger is away
    assert consumer.rewound == [[0, 1], [0, 1]]
    assert naps == [0.1, 0.2]  # backing off
    assert loop.stats.last_error is not None and "redis is away" in loop.stats.last_error
    ledger.down = None
    assert loop.step() == 2 and loop.step() == 1
    assert consumer.stored == [0, 1, 2]
    assert loop.stats.last_error is None  # cleared once it works again
    assert len(ledger.list_jobs(JobFilter()).items) == 3


def test_ingress_reads_a_batch_again_when_the_dispatcher_is_away() -> None:
    consumer = FakeConsumer([[_msg("a", 0)]])
    calls = {"n": 0}

    def handover(items: list[WorkItem], recheck: list[str]) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("dispatcher restarting")
        return False

    ledger = InMemoryLedger()
    loop = IngressLoop(consumer, _admitter(ledger), handover=handover, sleep=lambda s: None)
    assert loop.step() == 0
    assert consumer.stored == []
    assert loop.step() == 1  # the job was created the first time: now a queued duplicate
    assert consumer.stored == [0]
    assert loop.stats.created == 0 and loop.stats.duplicates == 1


def test_mineru_pool_asks_for_a_gpu_or_a_custom_resource_when_configured() -> None:
    def mineru(**kw: Any) -> Any:
        return next(p for p in builtin_pools(Settings(**kw)) if p.name == "mineru").resources

    assert (mineru().num_gpus, mineru().custom) == (0.0, {})
    assert mineru(mineru_num_gpus=1).num_gpus == 1
    assert mineru(mineru_resource="mineru").custom == {"mineru": 1.0}


def test_builtin_pipelines_have_the_documented_stages() -> None:
    catalog = builtin_catalog(Settings())
    assert [s.stage for s in catalog.pipeline("auto").stages] == [
        "metadata",
        "chunk",
        "embed",
        "index",
    ]
    assert [s.stage for s in catalog.pipeline("two_phase").stages] == [
        "metadata", "meta_index", "pdf_fetch", "mineru", "chunk", "embed", "index",
    ]  # fmt: skip
