from __future__ import annotations

from typing import Any

from ingest_ray.admission import Admitter
from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind, encode
from ingest_ray.pipelines.builtin import builtin_catalog, builtin_pools
from ingest_ray.runtime.ingress import IngressLoop
from ingest_ray.runtime.work import WorkItem
from ingest_ray.testing import InMemoryLedger
from tests.unit.test_admission import FakeSink


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
    def __init__(self, batches: list[list[Msg]]) -> None:
        self.batches = batches
        self.stored: list[int] = []
        self.paused = False
        self.calls: list[str] = []

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Any]:
        self.calls.append("poll")
        return self.batches.pop(0) if self.batches and not self.paused else []

    def store(self, messages: Any) -> None:
        self.stored += [m.offset() for m in messages]

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


def _msg(doc: str, offset: int) -> Msg:
    req = IngestRequest(doc_key=doc, source=DocumentSource(kind=SourceKind.TEXT, value=doc))
    return Msg(encode(req), offset)


def test_ingress_stores_offsets_only_after_the_dispatcher_took_the_batch() -> None:
    order: list[str] = []
    consumer = FakeConsumer([[_msg("a", 0), _msg("b", 1)]])

    def submit(items: list[WorkItem], recheck: list[str]) -> bool:
        order.append(f"submit:{len(items)}:stored={len(consumer.stored)}")
        return False

    loop = IngressLoop(consumer, Admitter(InMemoryLedger(), FakeSink()), submit, lambda: False)
    assert loop.step() == 2
    assert order == ["submit:2:stored=0"]
    assert consumer.stored == [0, 1]


def test_ingress_pauses_on_backpressure_and_resumes_below_the_low_watermark() -> None:
    consumer = FakeConsumer([[_msg("a", 0)], [_msg("b", 1)]])
    pressure = {"paused": True}
    loop = IngressLoop(
        consumer, Admitter(InMemoryLedger(), FakeSink()),
        submit=lambda items, recheck: pressure["paused"], is_paused=lambda: pressure["paused"],
        poll_s=0.0,
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
        consumer, Admitter(ledger, FakeSink()),
        submit=lambda items, recheck: seen.append((len(items), recheck)) or False,
        is_paused=lambda: False,
    )  # fmt: skip
    loop.step()
    loop.step()
    assert seen[0] == (1, [])
    assert seen[1][0] == 0
    assert len(seen[1][1]) == 1
    assert loop.stats.duplicates == 1


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
