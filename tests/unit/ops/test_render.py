"""Terminal output: search hits fit 80 columns, jobs tables name documents, raw values."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from ingest_ray.commands.dlq import parse_since, render_value
from ingest_ray.ledger.base import Job
from ingest_ray.render import fit, hit_lines, hits_text, jobs_table
from ingest_ray.states import JobStatus

HIT = {
    "doc_key": "pdf_path:/root/very/long/path/to/a/file/that/goes/on/and/on/ledger-notes.pdf",
    "title": "Compare-and-Set Job Ledgers for Document Ingestion at Scale, Revisited Once More",
    "section_path": ["2 Idempotent admission", "2.1 Redelivered messages and their offsets"],
    "page_start": 3,
    "snippet": "Admission is idempotent on the pair of tenant and document key. Redelivered "
    "Kafka messages find the job that already holds the document and are answered with it.",
    "score": 0.0325,
}


def test_render_hit_is_two_lines_within_the_width() -> None:
    for width in (80, 60, 40):
        first, second = hit_lines(HIT, 10, width)
        assert len(first) <= width and len(second) <= width
        assert first.startswith("10. ") and "p. 3" in first
        assert second.strip().startswith("Admission is idempotent")
    first, _ = hit_lines(HIT, 1, 80)
    assert "2 Idempotent admission > 2.1" in first  # the section stays, the title gives way
    assert "…" in first


def test_render_hits_text_fits_an_80_column_terminal() -> None:
    console = Console(width=80, record=True, color_system=None)
    hits = [HIT, {**HIT, "title": None, "section_path": [], "page_start": None, "snippet": ""}]
    console.print(hits_text(hits, console.width), end="")
    lines = console.export_text().splitlines()
    assert len(lines) == 4 and all(len(line) <= 80 for line in lines)
    assert lines[2].startswith("2. pdf_path:")  # no title: the key stands in


def test_render_jobs_table_names_documents_and_shows_keys_when_verbose() -> None:
    now = datetime.now(UTC)
    job = Job(job_id="01JABCDEFGHJKMNPQRSTVWXYZ0", tenant_id="t", doc_key="doi:10.1/x",
              pipeline="auto", status=JobStatus.COMPLETED, created_at=now, updated_at=now,
              outputs={"metadata": {"work": {"title": "A Real Title"}}})  # fmt: skip
    console = Console(width=120, record=True, color_system=None)
    console.print(jobs_table([job]))
    plain = console.export_text()
    assert "A Real Title" in plain and "doi:10.1/x" not in plain
    console.print(jobs_table([job], verbose=True))
    assert "doi:10.1/x" in console.export_text()


def test_render_value_shows_text_as_text_and_bytes_as_hex() -> None:
    assert render_value(b'{"a": 1}') == '{"a": 1}'
    dump = render_value(b"\xff\x00ab")
    assert dump.startswith("00000000  ff 00 61 62") and dump.endswith("..ab")
    assert render_value(b"ok", force_hex=True).startswith("00000000  6f 6b")
    assert fit("a  b\nc", 10) == "a b c"


def test_dlq_since_takes_durations_and_iso_times() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now=now) == datetime(2026, 1, 2, 11, 30, tzinfo=UTC)
    assert parse_since("2d", now=now) == datetime(2025, 12, 31, 12, 0, tzinfo=UTC)
    assert parse_since("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_since(None) is None
