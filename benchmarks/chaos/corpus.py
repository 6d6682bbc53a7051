"""What a chaos run sends: text documents (``auto``), PDFs (``two_phase``) and malformed
messages of every kind the admission must dead-letter, in one seeded, shuffled order."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from ingest_ray.events import DocumentSource, IngestRequest, SourceKind, encode

TENANT = "chaos"
_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "ledger outbox relay dispatcher lease retry backoff tenant partition offset replica index "
    "vector chunk embedding section abstract citation protein genome cohort trial sample "
    "measurement spectrum catalyst lattice boundary theorem estimator variance posterior"
).split()


@dataclass(frozen=True)
class Outgoing:
    """One message to produce: a good request (``doc_key`` set) or a malformed value."""

    value: bytes | None
    key: str
    doc_key: str | None = None
    kind: str = "good"


def text_request(rng: random.Random, i: int) -> IngestRequest:
    """A short, unique text document."""
    body = " ".join(rng.choice(_WORDS) for _ in range(60))
    text = f"Document {i}. {body.capitalize()}."
    return IngestRequest(
        tenant_id=TENANT, source=DocumentSource(kind=SourceKind.TEXT, value=text),
        metadata={"title": f"chaos text {i}"},
    )  # fmt: skip


def pdf_requests(pdfs: list[Path], count: int, workdir: Path) -> list[IngestRequest]:
    """``count`` copies of the fixture PDFs under distinct names (distinct documents)."""
    out = []
    target = workdir / "pdfs"
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        source = pdfs[i % len(pdfs)]
        copy = target / f"{i:04d}-{source.name}"
        shutil.copyfile(source, copy)
        out.append(IngestRequest(
            tenant_id=TENANT, source=DocumentSource(kind=SourceKind.PDF_PATH, value=str(copy)),
        ))  # fmt: skip
    return out


def _envelope(**fields: object) -> bytes:
    base = {"schema_version": 1, "event_type": "ingest.request", "tenant_id": TENANT,
            "source": {"kind": "doi", "value": "10.1/malformed"}}  # fmt: skip
    return json.dumps({**base, **fields}).encode()


def malformed(count: int) -> list[Outgoing]:
    """Bad messages, cycling through every kind (each one distinct)."""
    kinds: list[tuple[str, object]] = [
        ("not-json", lambda i: b"not json at all %d" % i),
        ("binary-900kb", lambda i: b"\xff" * 900_000 + bytes([i % 256])),
        ("wrong-event-type", lambda i: _envelope(event_type="ingest.result", n=i)),
        ("version-true", lambda i: _envelope(schema_version=True, request_id=f"t{i}")),
        ("version-float", lambda i: _envelope(schema_version=1.0, request_id=f"f{i}")),
        ("version-string", lambda i: _envelope(schema_version="1", request_id=f"s{i}")),
        ("unknown-pipeline", lambda i: _envelope(pipeline="no_such_pipeline", request_id=f"p{i}")),
        ("lone-surrogate", lambda i: _envelope(metadata={"title": f"\ud800 {i}"})),
        ("nul-in-text", lambda i: _envelope(metadata={"title": f"a\x00b {i}"})),
        ("nan-in-metadata", lambda i: _envelope(metadata={"score": float("nan"), "n": i})),
        ("missing-source", lambda i: json.dumps({"schema_version": 1,
                                                 "event_type": "ingest.request", "n": i}).encode()),
        ("tombstone", lambda i: None),
        ("priority-out-of-range", lambda i: _envelope(priority=42, request_id=f"q{i}")),
        ("extra-field", lambda i: _envelope(unexpected=i)),
    ]  # fmt: skip
    out = []
    for i in range(count):
        kind, make = kinds[i % len(kinds)]
        out.append(Outgoing(make(i), key=f"bad-{kind}-{i}", kind=kind))  # type: ignore[operator]
    return out


def corpus(
    jobs: int, pdf_share: float, bad: int, pdfs: list[Path], workdir: Path, seed: int
) -> list[Outgoing]:
    """Good and bad messages in a seeded random order."""
    rng = random.Random(seed)
    n_pdf = round(jobs * pdf_share) if pdfs else 0
    good = [text_request(rng, i) for i in range(jobs - n_pdf)]
    good += pdf_requests(pdfs, n_pdf, workdir)
    out = [Outgoing(encode(r), key=r.doc_key, doc_key=r.doc_key) for r in good] + malformed(bad)
    rng.shuffle(out)
    return out
