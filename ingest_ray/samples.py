"""Sample documents for the main job, written as PDFs at run time from text kept here.

They are short technical notes about this project (our own text, no third-party content), with
a title, authors, numbered section headings and paragraphs, so the parser finds headings and the
search has distinctive sentences to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF


@dataclass(frozen=True, slots=True)
class Sample:
    """One document: ``body`` holds ``## heading`` lines and blank-line separated paragraphs."""

    slug: str
    title: str
    authors: str
    body: str

    def sections(self) -> list[tuple[str, list[str]]]:
        """(heading, paragraphs) in order."""
        out: list[tuple[str, list[str]]] = []
        for block in self.body.strip().split("\n\n"):
            lines = [line.strip() for line in block.strip().splitlines()]
            if lines[0].startswith("## "):
                out.append((lines[0][3:], []))
                lines = lines[1:]
            if lines:
                out[-1][1].append(" ".join(lines))
        return out


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "ledger-notes",
        "Compare-and-Set Job Ledgers for Document Ingestion",
        "A. Ledger, B. Stream (ingest_ray notes, 2026)",
        """
## 1 Introduction
A job ledger records every state change of every ingestion job. Each transition is a
compare-and-set on the status the writer expects, so two workers can never both move the
same job.

The ledger also appends each transition to a per-job event stream whose ids are consecutive
sequence numbers, which lets a client resume a progress feed exactly where it stopped.

## 2 Idempotent admission
Admission is idempotent on the pair of tenant and document key. Redelivered Kafka messages
find the job that already holds the document and are answered with it, so a crash between
admission and offset commit never duplicates a document.

## 3 Leases
A running stage holds a lease. When the actor that runs it dies, the lease expires and the
stage runs again as the next attempt of the same job.
""",
    ),
    Sample(
        "dispatch-notes",
        "Priority Dispatch with Aging for GPU Stage Pools",
        "C. Dispatcher, D. Pool (ingest_ray notes, 2026)",
        """
## 1 Ready queues
Ready work waits in ten priority buckets. The dispatcher picks the bucket whose head has the
largest priority plus waiting time divided by the aging interval, so low priority work is
never starved by a steady stream of urgent requests.

## 2 Budgets and backpressure
Every stage pool has a concurrency budget. When the number of held jobs passes the high
watermark, ingress pauses its Kafka consumers and resumes them below the low watermark, which
keeps memory bounded while the GPUs stay busy.

## 3 Delayed retries
A failed stage that may succeed later waits on a timer heap with exponential backoff and full
jitter. A waiting retry holds no worker at all.
""",
    ),
    Sample(
        "retrieval-notes",
        "Hybrid Retrieval over Parsed Scholarly PDFs",
        "E. Vector, F. Lexicon (ingest_ray notes, 2026)",
        """
## 1 Chunking
Parsed pages are cut into chunks that never cross a section heading and never exceed the
token limit of the embedding model, with a small overlap between neighbouring chunks of the
same section.

## 2 Reciprocal rank fusion
Hybrid search runs a vector query and a full-text query and fuses the two ranked lists with
reciprocal rank fusion, which rewards documents that both retrievers place near the top.

## 3 Entities
After indexing, each document is mapped to its authors, institutions, topics and the
identifiers it cites, such as DOI 10.5555/ingest-ray.sample, so that a search by identifier
finds every document that mentions it.
""",
    ),
)


def render(sample: Sample, path: Path) -> Path:
    """Write ``sample`` as a PDF (Helvetica; headings larger and bold)."""
    pdf = FPDF(format="A4")
    pdf.set_title(sample.title)
    pdf.set_author(sample.authors)
    pdf.add_page()
    _line(pdf, sample.title, "B", 18, 9)
    _line(pdf, sample.authors, "I", 10, 6)
    for heading, paragraphs in sample.sections():
        pdf.ln(4)
        _line(pdf, heading, "B", 14, 8)
        for paragraph in paragraphs:
            _line(pdf, paragraph, "", 11, 6)
            pdf.ln(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def _line(pdf: FPDF, text: str, style: str, size: int, height: float) -> None:
    pdf.set_font("Helvetica", style, size)
    pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def write_samples(directory: Path) -> list[Path]:
    """Render every sample into ``directory``; returns the files."""
    return [render(s, directory / f"{s.slug}.pdf") for s in SAMPLES]
