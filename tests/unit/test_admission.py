from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from ingest_ray import constants as c
from ingest_ray.admission import Admitter, RawRecord, default_pipeline
from ingest_ray.deadletters import read_letter
from ingest_ray.errors import DamagedRecordError, LedgerError, RetryableError
from ingest_ray.events import DeadLetter, DocumentSource, IngestRequest, SourceKind, encode
from ingest_ray.ledger.base import CreateOutcome, NewJob
from ingest_ray.states import JobStatus
from ingest_ray.testing import InMemoryLedger


class _LedgerAway(LedgerError, RetryableError):
    """A refusal that may pass (the ledger's own retryable kind)."""


class _RefusingLedger(InMemoryLedger):
    """Refuses the documents in ``refuse`` with the given error, like a damaged record."""

    def __init__(self, refuse: dict[str, LedgerError]) -> None:
        super().__init__()
        self.refuse = refuse

    def create_many(self, jobs: Sequence[NewJob]) -> list[CreateOutcome | LedgerError]:
        return [self.refuse.get(j.doc_key) or self.create(j) for j in jobs]


def _record(value: bytes | None, offset: int) -> RawRecord:
    return RawRecord(topic="req", partition=2, offset=offset, key=b"k", value=value)


def _req(value: str, kind: SourceKind = SourceKind.DOI, **kw: object) -> bytes:
    return encode(IngestRequest(source=DocumentSource(kind=kind, value=value), **kw))


def _admitter(ledger: InMemoryLedger, **kw: object) -> Admitter:
    return Admitter(ledger, dead_letter_topic="dlq", **kw)  # type: ignore[arg-type]


def _letters(ledger: InMemoryLedger) -> list[tuple[dict[str, str], bytes]]:
    return [(dict(e.message.headers), e.message.value) for e in ledger.outbox_claim("t")]


def test_admitter_dead_letters_bad_messages_with_their_bytes_and_admits_the_rest() -> None:
    ledger = InMemoryLedger()
    batch = _admitter(ledger).admit(
        [_record(_req("10.1/a"), 0), _record(b"garbage", 1), _record(_req("10.1/b"), 2)]
    )
    assert [a.request.doc_key for a in batch.admitted] == ["doi:10.1/a", "doi:10.1/b"]
    assert len(batch.new_jobs) == 2
    ((headers, value),) = _letters(ledger)
    assert value == b"garbage"
    assert set(headers) == set(c.DLQ_HEADERS)  # every letter carries every header
    assert headers[c.DLQ_HEADER_KIND] == "message"
    assert headers[c.DLQ_HEADER_TOPIC] == "req" and headers[c.DLQ_HEADER_OFFSET] == "1"
    assert headers[c.DLQ_HEADER_REASON].startswith("not JSON")
    assert headers[c.DLQ_HEADER_EVENT_ID] == "dlq:req:2:1"


def test_admitter_redelivered_bad_message_gets_the_same_event_id() -> None:
    ledger = InMemoryLedger()
    _admitter(ledger).admit([_record(b"garbage", 7)])
    _admitter(ledger).admit([_record(b"garbage", 7)])
    ids = {h[c.DLQ_HEADER_EVENT_ID] for h, _ in _letters(ledger)}
    assert ids == {"dlq:req:2:7"}  # consumers drop the second


def test_admitter_keeps_a_900kb_binary_message_whole_and_truncates_above_the_limit() -> None:
    ledger = InMemoryLedger()
    big = b"\xff" * 900_000
    _admitter(ledger).admit([_record(big, 0)])
    _admitter(ledger, max_message_bytes=100_000).admit([_record(big, 1)])
    (h1, v1), (h2, v2) = _letters(ledger)
    assert v1 == big and h1[c.DLQ_HEADER_TRUNCATED] == ""
    assert h2[c.DLQ_HEADER_TRUNCATED] == "900000"
    assert v2 == big[: len(v2)] and len(v2) < 100_000


def test_admitter_dead_letters_an_unknown_pipeline_without_touching_its_batch_mates() -> None:
    ledger = InMemoryLedger()
    batch = _admitter(ledger, pipelines={"auto", "two_phase"}).admit(
        [_record(_req("10.1/a"), 0), _record(_req("10.1/b", pipeline="nope"), 1),
         _record(_req("10.1/c"), 2)]
    )  # fmt: skip
    assert [a.request.doc_key for a in batch.admitted] == ["doi:10.1/a", "doi:10.1/c"]
    ((headers, _),) = _letters(ledger)
    assert "unknown pipeline 'nope'" in headers[c.DLQ_HEADER_REASON]
    assert ledger.counts()[JobStatus.QUEUED] == 2  # only the two good jobs exist


@pytest.mark.parametrize(
    ("title", "why"), [("\ud800 broken", "not valid Unicode"), ("a\x00b", "NUL character")]
)
def test_admitter_refuses_text_that_is_not_valid_unicode_or_holds_a_nul(
    title: str, why: str
) -> None:
    ledger = InMemoryLedger()
    bad = json.dumps({
        "schema_version": 1, "event_type": "ingest.request", "source": {"kind": "text",
        "value": "x"}, "metadata": {"title": title},
    }).encode()  # fmt: skip
    batch = _admitter(ledger).admit([_record(bad, 0), _record(_req("10.1/ok"), 1)])
    assert len(batch.admitted) == 1
    ((headers, value),) = _letters(ledger)
    assert "metadata.title" in headers[c.DLQ_HEADER_REASON]
    assert why in headers[c.DLQ_HEADER_REASON]
    assert value == bad


def test_admitter_refuses_metadata_numbers_json_does_not_have() -> None:
    ledger = InMemoryLedger()
    bad = (b'{"schema_version": 1, "event_type": "ingest.request", "source": {"kind": "doi", '
           b'"value": "10.1/x"}, "metadata": {"scores": [1.5, NaN]}}')  # fmt: skip
    batch = _admitter(ledger).admit([_record(bad, 0)])
    assert batch.admitted == []
    ((headers, value),) = _letters(ledger)
    assert "metadata.scores[1]: nan is not a JSON number" in headers[c.DLQ_HEADER_REASON]
    assert value == bad


@pytest.mark.parametrize("version", ["true", "1.0", '"1"'])
def test_admitter_refuses_schema_versions_that_are_not_integers(version: str) -> None:
    ledger = InMemoryLedger()
    raw = (
        b'{"schema_version": %s, "event_type": "ingest.request", "source": {"kind": "doi", "value": "10.1/x"}}'
        % version.encode()
    )
    batch = _admitter(ledger).admit([_record(raw, 0)])
    assert batch.admitted == []
    assert "schema_version" in batch.rejected[0].reason


def test_admitter_raises_when_the_ledger_is_away_and_admits_nothing() -> None:
    ledger = InMemoryLedger()
    ledger.down = ConnectionError("redis down")
    with pytest.raises(ConnectionError):
        _admitter(ledger).admit([_record(_req("10.1/a"), 0), _record(b"bad", 1)])


def test_admitter_dead_letters_a_request_the_ledger_refuses_and_admits_its_batch_mates() -> None:
    damaged = DamagedRecordError("create of J1: WRONGTYPE", job_id="J1")
    ledger = _RefusingLedger({"doi:10.1/b": damaged})
    refused = _req("10.1/b")
    batch = _admitter(ledger).admit(
        [_record(_req("10.1/a"), 0), _record(refused, 1), _record(b"junk", 2)]
    )
    assert [a.request.doc_key for a in batch.admitted] == ["doi:10.1/a"]
    assert sorted(r.error_type for r in batch.rejected) == ["DamagedRecordError",
                                                            "MessageDecodeError"]  # fmt: skip
    letters = {h[c.DLQ_HEADER_OFFSET]: (h, v) for h, v in _letters(ledger)}
    headers, value = letters["1"]
    assert value == refused  # the request as it came, to replay once repaired
    assert headers[c.DLQ_HEADER_REASON] == "create of J1: WRONGTYPE"
    assert headers[c.DLQ_HEADER_DOC_KEY] == "doi:10.1/b"
    assert headers[c.DLQ_HEADER_TENANT] == "default"


def test_admitter_raises_on_a_refusal_that_may_pass_so_the_batch_is_read_again() -> None:
    ledger = _RefusingLedger({"doi:10.1/b": _LedgerAway("try later")})
    with pytest.raises(_LedgerAway):
        _admitter(ledger).admit([_record(_req("10.1/a"), 0), _record(_req("10.1/b"), 1)])
    assert ledger.outbox_depth() == 0


def test_admitter_duplicate_returns_existing_job_and_is_not_new() -> None:
    ledger = InMemoryLedger()
    admitter = _admitter(ledger)
    first = admitter.admit([_record(_req("10.1/a"), 0)])
    second = admitter.admit([_record(_req("10.1/A"), 1)])
    assert second.admitted[0].outcome.job_id == first.admitted[0].outcome.job_id
    assert second.new_jobs == []
    assert ledger.outbox_depth() == 0


def test_admitter_rejects_other_event_types_on_the_request_topic() -> None:
    wrong = encode(DeadLetter(reason="x", error_type="y"))
    batch = _admitter(InMemoryLedger()).admit([_record(wrong, 5)])
    assert batch.admitted == []
    assert "expected ingest.request" in batch.rejected[0].reason


def test_admitter_chooses_pipeline_and_keeps_request_metadata() -> None:
    ledger = InMemoryLedger()
    batch = _admitter(ledger).admit(
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


def test_read_letter_round_trips_the_headers() -> None:
    ledger = InMemoryLedger()
    _admitter(ledger).admit([_record(b"\x00bad", 3)])
    ((headers, value),) = _letters(ledger)
    view = read_letter(headers, value)
    assert view.kind == "message" and view.value == b"\x00bad"
    assert view.origin is not None and (view.origin.topic, view.origin.offset) == ("req", 3)
