from __future__ import annotations

from ingest_ray.admission import Admitter, RawRecord, default_pipeline
from ingest_ray.constants import DLQ_HEADER_OFFSET, DLQ_HEADER_REASON, DLQ_HEADER_TOPIC
from ingest_ray.events import DeadLetter, DocumentSource, IngestRequest, SourceKind, encode
from ingest_ray.testing import InMemoryLedger


class FakeSink:
    def __init__(self) -> None:
        self.sent: list[tuple[DeadLetter, bytes | None, dict[str, str]]] = []
        self.flushes = 0

    def publish(self, letter: DeadLetter, *, key: bytes | None, headers: dict[str, str]) -> None:
        self.sent.append((letter, key, headers))

    def flush(self) -> None:
        self.flushes += 1


def _record(value: bytes | None, offset: int) -> RawRecord:
    return RawRecord(topic="req", partition=2, offset=offset, key=b"k", value=value)


def _req(value: str, kind: SourceKind = SourceKind.DOI, **kw: object) -> bytes:
    return encode(IngestRequest(source=DocumentSource(kind=kind, value=value), **kw))


def test_admitter_dead_letters_bad_messages_and_admits_the_rest() -> None:
    ledger, sink = InMemoryLedger(), FakeSink()
    batch = Admitter(ledger, sink).admit(
        [_record(_req("10.1/a"), 0), _record(b"garbage", 1), _record(_req("10.1/b"), 2)]
    )
    assert [a.request.doc_key for a in batch.admitted] == ["doi:10.1/a", "doi:10.1/b"]
    assert len(batch.new_jobs) == 2
    assert sink.flushes == 1
    letter, key, headers = sink.sent[0]
    assert key == b"k"
    assert letter.raw == "garbage" and letter.origin_offset == 1
    assert headers[DLQ_HEADER_TOPIC] == "req" and headers[DLQ_HEADER_OFFSET] == "1"
    assert headers[DLQ_HEADER_REASON].startswith("not JSON")


def test_admitter_duplicate_returns_existing_job_and_is_not_new() -> None:
    ledger, sink = InMemoryLedger(), FakeSink()
    admitter = Admitter(ledger, sink)
    first = admitter.admit([_record(_req("10.1/a"), 0)])
    second = admitter.admit([_record(_req("10.1/A"), 1)])
    assert second.admitted[0].outcome.job_id == first.admitted[0].outcome.job_id
    assert second.new_jobs == []
    assert sink.flushes == 0


def test_admitter_rejects_other_event_types_on_the_request_topic() -> None:
    sink = FakeSink()
    wrong = encode(DeadLetter(reason="x", error_type="y"))
    batch = Admitter(InMemoryLedger(), sink).admit([_record(wrong, 5)])
    assert batch.admitted == []
    assert "expected ingest.request" in batch.dead_letters[0].reason


def test_admitter_chooses_pipeline_and_keeps_request_metadata() -> None:
    ledger = InMemoryLedger()
    batch = Admitter(ledger, FakeSink()).admit(
        [
            _record(_req("some text", SourceKind.TEXT, metadata={"lang": "en"}), 0),
            _record(_req("10.1/pdf", pipeline="custom", priority=8), 1),
        ]
    )
    text_job = ledger.get(batch.admitted[0].outcome.job_id)
    custom_job = ledger.get(batch.admitted[1].outcome.job_id)
    assert text_job.pipeline == "auto" and text_job.metadata["request"] == {"lang": "en"}
    assert custom_job.pipeline == "custom" and custom_job.priority == 8


def test_default_pipeline_sends_pdfs_and_dois_two_phase() -> None:
    def pick(kind: SourceKind) -> str:
        return default_pipeline(IngestRequest(source=DocumentSource(kind=kind, value="v")))

    assert pick(SourceKind.TEXT) == "auto"
    assert {pick(k) for k in SourceKind if k is not SourceKind.TEXT} == {"two_phase"}
