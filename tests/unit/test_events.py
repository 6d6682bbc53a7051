from __future__ import annotations

import json

import pytest

from ingest_ray.errors import MessageDecodeError
from ingest_ray.events import (
    DeadLetter,
    DocumentSource,
    IngestRequest,
    IngestResult,
    SourceKind,
    decode,
    encode,
    normalize_doi,
)


def _request(**kw: object) -> IngestRequest:
    return IngestRequest(source=DocumentSource(kind=SourceKind.DOI, value="10.1/X"), **kw)


def test_events_round_trip_every_type() -> None:
    events = [
        _request(priority=9, metadata={"a": 1}),
        IngestResult(job_id="j", tenant_id="t", doc_key="d", pipeline="auto", status="completed"),
        DeadLetter(reason="r", error_type="E", origin_topic="x", origin_partition=1),
    ]
    for event in events:
        assert decode(encode(event)) == event


@pytest.mark.parametrize(
    ("doi", "normal"),
    [
        ("https://doi.org/10.1371/Journal.PONE.0000030", "10.1371/journal.pone.0000030"),
        ("doi:10.1002/(SICI)1097-4636;2-L", "10.1002/(sici)1097-4636;2-l"),
        ("  http://dx.doi.org/10.1/a ", "10.1/a"),
    ],
)
def test_normalize_doi_strips_resolver_and_case(doi: str, normal: str) -> None:
    assert normalize_doi(doi) == normal


def test_doc_key_is_derived_from_source_when_missing() -> None:
    assert _request().doc_key == "doi:10.1/x"
    explicit = _request(doc_key="mine")
    assert explicit.doc_key == "mine"
    text = IngestRequest(source=DocumentSource(kind=SourceKind.TEXT, value="x" * 3000))
    assert text.doc_key.startswith("text:") and len(text.doc_key) == 37


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"event_type": "ingest.request"}', "unsupported schema_version None"),
        (b'{"schema_version": 2, "event_type": "ingest.request"}', "unsupported schema_version 2"),
        (b'{"schema_version": 1, "event_type": "nope"}', "invalid envelope"),
        (b'{"schema_version": 1, "event_type": "ingest.request"}', "source: Field required"),
    ],
)
def test_decode_rejects_bad_values_with_reason_and_raw_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageDecodeError) as info:
        decode(raw)
    assert reason in info.value.reason
    assert info.value.raw == raw
    assert info.value.retryable is False


def test_decode_rejects_unknown_fields_and_bad_priority() -> None:
    base = json.loads(encode(_request()))
    with pytest.raises(MessageDecodeError, match="Extra inputs"):
        decode(json.dumps({**base, "status": "completed"}).encode())
    with pytest.raises(MessageDecodeError, match="priority"):
        decode(json.dumps({**base, "priority": 12}).encode())


def test_decode_of_tombstone_is_an_error() -> None:
    with pytest.raises(MessageDecodeError, match="tombstone"):
        decode(None)


def test_errors_survive_pickling_with_their_context() -> None:
    import pickle

    from ingest_ray.errors import StaleTransitionError

    stale = pickle.loads(
        pickle.dumps(StaleTransitionError("moved", job_id="j1", actual_status="done"))
    )
    assert (stale.job_id, stale.actual_status, str(stale)) == ("j1", "done", "moved")
    bad = pickle.loads(pickle.dumps(MessageDecodeError("nope", b"\x00raw")))
    assert (bad.reason, bad.raw, bad.retryable) == ("nope", b"\x00raw", False)
