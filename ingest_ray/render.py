"""Rich renderings shared by the CLI commands."""

from __future__ import annotations

from rich.table import Table

from ingest_ray.ledger.base import Job
from ingest_ray.states import JobStatus

STATUS_STYLE = {
    JobStatus.QUEUED: "yellow",
    JobStatus.PROCESSING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
}


def jobs_table(jobs: list[Job]) -> Table:
    """A rich table of jobs."""
    table = Table("job_id", "tenant", "pipeline", "status", "stage", "prio", "tries")
    table.add_column("doc_key", overflow="ellipsis", no_wrap=True, max_width=48)
    table.columns[0].no_wrap = True
    for job in jobs:
        style = STATUS_STYLE[job.status]
        table.add_row(
            job.job_id, job.tenant_id, job.pipeline, f"[{style}]{job.status.value}",
            job.stage or "-", str(job.priority), str(job.attempts), job.doc_key,
        )  # fmt: skip
    return table
