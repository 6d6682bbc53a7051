"""Rich renderings shared by the CLI commands.

Documents are shown by :func:`ingest_ray.documents.document_label` (title, else file name, else
DOI); ``verbose`` adds the tenant and the ``doc_key``. Search hits take two lines each, cut to
the console's width: rank, title, section and page, then a one-line snippet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from ingest_ray.documents import document_label
from ingest_ray.ledger.base import Job
from ingest_ray.states import JobStatus

#: a title is cut no shorter than this while a section path can give way instead
_MIN_TITLE = 24

STATUS_STYLE = {
    JobStatus.QUEUED: "yellow",
    JobStatus.PROCESSING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
}


@dataclass(frozen=True, slots=True)
class JobRow:
    """What a jobs table shows of one job (from the ledger or from the API's summary)."""

    job_id: str
    tenant_id: str
    pipeline: str
    status: JobStatus
    stage: str | None
    priority: int
    attempts: int
    doc_key: str
    document: str

    @classmethod
    def of(cls, job: Job | Mapping[str, Any]) -> JobRow:
        """A row from a ledger job, or from a ``JobSummary`` as the API sends it."""
        if isinstance(job, Job):
            data: Mapping[str, Any] = job.model_dump(mode="json")
            label = document_label(job)
        else:
            data, label = job, str(job.get("document") or job.get("doc_key") or "")
        return cls(
            job_id=str(data["job_id"]), tenant_id=str(data["tenant_id"]),
            pipeline=str(data["pipeline"]), status=JobStatus(data["status"]),
            stage=data.get("stage"), priority=int(data.get("priority", 5)),
            attempts=int(data.get("attempts", 0)), doc_key=str(data["doc_key"]), document=label,
        )  # fmt: skip


def jobs_table(jobs: Sequence[Job | Mapping[str, Any] | JobRow], *, verbose: bool = False) -> Table:
    """A rich table of jobs: the document by name; tenant and ``doc_key`` when ``verbose``."""
    rows = [j if isinstance(j, JobRow) else JobRow.of(j) for j in jobs]
    table = Table("job_id", "document", "status", "stage", "tries")
    table.columns[0].no_wrap = True
    table.columns[1].overflow, table.columns[1].no_wrap = "ellipsis", True
    table.columns[1].ratio = 1
    if verbose:
        table.add_column("tenant")
        table.add_column("pipeline")
        table.add_column("prio")
        table.add_column("doc_key", overflow="fold")
    for row in rows:
        style = STATUS_STYLE[row.status]
        cells = [row.job_id, row.document, f"[{style}]{row.status.value}", row.stage or "-",
                 str(row.attempts)]  # fmt: skip
        if verbose:
            cells += [row.tenant_id, row.pipeline, str(row.priority), row.doc_key]
        table.add_row(*cells)
    return table


def fit(text: str, width: int) -> str:
    """``text`` on one line, cut with an ellipsis to at most ``width`` terminal cells."""
    line = Text(" ".join(text.split()))
    line.truncate(max(1, width), overflow="ellipsis")
    return line.plain


def hit_lines(hit: Mapping[str, Any], rank: int, width: int = 80) -> tuple[str, str]:
    """Two lines of at most ``width`` cells: ``rank. title · section · p. N`` and the snippet.
    The page always shows; the section is cut before the title is squeezed below a readable
    minimum, and the title takes what is left."""
    title = str(hit.get("title") or hit.get("document") or hit.get("doc_key") or "")
    section = " > ".join(map(str, hit.get("section_path") or []))
    page = f"p. {hit['page_start']}" if hit.get("page_start") is not None else ""
    head = f"{rank}. "
    room = width - cell_len(head)
    keep = min(cell_len(title), _MIN_TITLE)
    if section:
        budget = room - keep - 3 - (cell_len(page) + 3 if page else 0)
        section = fit(section, budget) if budget >= 8 else ""
    tail = " · ".join(part for part in (section, page) if part)
    title_room = room - (cell_len(tail) + 3 if tail else 0)
    first = head + fit(title, max(1, title_room)) + (f" · {tail}" if tail else "")
    snippet = "   " + fit(str(hit.get("snippet") or ""), width - 3)
    return fit(first, width), snippet


def hits_text(hits: Sequence[Mapping[str, Any]], width: int, *, verbose: bool = False) -> Text:
    """Every hit as :func:`hit_lines` (plus its ``doc_key`` and score when ``verbose``)."""
    out = Text()
    for rank, hit in enumerate(hits, start=1):
        first, second = hit_lines(hit, rank, width)
        out.append(first + "\n", style="bold")
        out.append(second + "\n")
        if verbose:
            score = hit.get("score")
            extra = f"   {hit.get('doc_key')}" + (f"  score {score:.4f}" if score else "")
            out.append(fit(extra, width) + "\n", style="dim")
    return out
