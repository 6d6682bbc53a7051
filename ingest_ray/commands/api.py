"""The HTTP job API from the command line: submit, jobs, job, watch, cancel, retry, serve.

These commands talk to the job API (``serve_app``) over HTTP
(:mod:`ingest_ray.commands.api_client`), so they work against a remote cluster; the URL and key
come from ``--url``/``--key`` or ``INGEST_RAY_API_URL`` / ``INGEST_RAY_API_KEY``. ``watch`` draws
one progress line per stage from each job's event stream and exits with the job's outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest_ray.commands.api_client import (
    ApiClientSettings,
    ApiError,
    ApiUnavailableError,
    JobApi,
    follow_job,
)
from ingest_ray.commands.common import console, err_console, require_port
from ingest_ray.config import get_settings
from ingest_ray.ledger.base import JobEvent
from ingest_ray.local_run import guess_source
from ingest_ray.render import jobs_table
from ingest_ray.states import JobStatus

#: ``watch`` exit codes by outcome; 3 means the API could not be reached or refused the call
EXIT_CODES = {JobStatus.COMPLETED: 0, JobStatus.FAILED: 1, JobStatus.CANCELLED: 2}
EXIT_API_ERROR = 3


@dataclass
class StageLine:
    """What one stage of a watched job shows."""

    stage: str
    state: str = "running"
    attempt: int = 1
    note: str = ""


@dataclass
class JobProgress:
    """The stages of one job as its events tell them; a pure model the watch view renders."""

    job_id: str
    status: JobStatus = JobStatus.QUEUED
    stages: dict[str, StageLine] = field(default_factory=dict)

    def apply(self, event: JobEvent) -> None:
        """Update the stage lines from one ledger event."""
        self.status = event.to_status
        done = event.data.get("completed")
        if isinstance(done, str):
            self._line(done).state = "done"
            ms = event.data.get("duration_ms")
            self._line(done).note = f"{ms} ms" if ms is not None else ""
        if event.to_status is JobStatus.FAILED:
            stage = event.data.get("failed_stage") or (event.error.stage if event.error else None)
            line = self._line(str(stage or event.stage or "?"))
            line.state, line.note = "failed", event.error.message if event.error else ""
        elif event.to_status is JobStatus.CANCELLED:
            for line in self.stages.values():
                if line.state in {"running", "retrying"}:
                    line.state = "cancelled"
        elif event.stage and event.to_status is JobStatus.PROCESSING:
            self._advance(event)

    def _advance(self, event: JobEvent) -> None:
        line = self._line(str(event.stage))
        line.attempt = max(1, event.attempts)
        if "failed_attempt" in event.data:
            line.state = "retrying"
            line.note = event.error.message if event.error else ""
        elif line.state != "done":
            line.state, line.note = "running", ""

    def _line(self, stage: str) -> StageLine:
        return self.stages.setdefault(stage, StageLine(stage))


_STATE_STYLE = {"running": "cyan", "retrying": "yellow", "done": "green", "failed": "red",
                "cancelled": "magenta"}  # fmt: skip


class WatchView:
    """Rich progress bars: one line per stage of each watched job."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def render(self, job: JobProgress) -> None:
        """Bring the job's stage lines up to date (safe to call from several threads)."""
        for line in job.stages.values():
            key = (job.job_id, line.stage)
            if key not in self._tasks:
                label = f"{job.job_id[-10:]} {line.stage}"
                self._tasks[key] = self._progress.add_task(label, total=None, state="")
            finished = line.state in {"done", "failed", "cancelled"}
            retry = f" (try {line.attempt})" if line.attempt > 1 else ""
            state = f"[{_STATE_STYLE[line.state]}]{line.state}{retry}[/] {line.note}"
            self._progress.update(
                self._tasks[key], total=1 if finished else None,
                completed=1 if line.state == "done" else 0, state=state,
            )  # fmt: skip


def watch_jobs(api: JobApi, job_ids: Sequence[str], *, reconnects: int = 20) -> list[JobStatus]:
    """Follow jobs concurrently with progress bars; their final statuses, in order."""
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.fields[state]}"),
    )
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        view = WatchView(progress)

        def one(job_id: str) -> JobStatus:
            job = JobProgress(job_id)

            def on_event(event: JobEvent) -> None:
                job.apply(event)
                view.render(job)

            return follow_job(api, job_id, on_event, reconnects=reconnects)

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(job_ids)))) as pool:
            return list(pool.map(one, job_ids))


def outcome_code(statuses: Sequence[JobStatus]) -> int:
    """One exit code for many jobs: 1 if any failed, else 2 if any was cancelled, else 0."""
    return max((EXIT_CODES[s] for s in statuses), default=0, key=lambda c: (c == 1, c))


# --- the commands -----------------------------------------------------------------------------

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Job API base URL [env INGEST_RAY_API_URL].")
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="API key or JWT [env INGEST_RAY_API_KEY].", show_default=False),
]


class _Session:
    """A client for one command; API errors become one red line and exit code 3."""

    def __init__(self, url: str | None, key: str | None) -> None:
        self.cfg = ApiClientSettings()
        secret = self.cfg.api_key.get_secret_value() if self.cfg.api_key else None
        self.api = JobApi(url or self.cfg.api_url, key or secret, timeout=self.cfg.api_timeout_s)

    def __enter__(self) -> JobApi:
        return self.api

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: object
    ) -> None:
        self.api.close()
        if isinstance(exc, ApiError | ApiUnavailableError):
            err_console.print(f"[red]error:[/] {exc.error_type}: {exc}")
            raise typer.Exit(EXIT_API_ERROR) from exc


def submit(
    sources: Annotated[list[str], typer.Argument(help="DOIs, OpenAlex ids, PDF URLs, PDF files.")],
    kind: Annotated[
        str | None, typer.Option(help="Force the kind: doi|openalex|pdf_url|text.")
    ] = None,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline name.")] = None,
    priority: Annotated[int, typer.Option(min=0, max=9, help="0 (low) .. 9 (high).")] = 5,
    metadata: Annotated[str | None, typer.Option(help="JSON object stored with each job.")] = None,
    follow: Annotated[bool, typer.Option("--watch", help="Watch the jobs until they end.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Submit documents to the job API (local PDF files are uploaded)."""
    extra = {"pipeline": pipeline} if pipeline else {}
    if metadata:
        extra["metadata"] = json.loads(metadata)
    files = [Path(s) for s in sources if kind is None and Path(s).is_file()]
    items = [_item(s, kind, priority, extra) for s in sources if Path(s) not in files]
    with _Session(url, key) as api:
        answers = [
            row for p in files for row in api.upload(p, priority=priority, pipeline=pipeline)
        ]
        for start in range(0, len(items), 100):
            answers += api.submit(items[start : start + 100])
        for row in answers:
            state = "[green]created" if row.get("created") else "[yellow]exists"
            console.print(f"{row['job_id']}  {state}[/]  {row.get('status')}  {row.get('doc_key')}")
        if follow:
            raise typer.Exit(outcome_code(watch_jobs(api, [r["job_id"] for r in answers])))


def _item(value: str, kind: str | None, priority: int, extra: dict[str, Any]) -> dict[str, Any]:
    source = {"kind": kind, "value": value} if kind else guess_source(value).model_dump(mode="json")
    return {"source": source, "priority": priority, **extra}


def jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Filter by status.")] = None,
    stage: Annotated[str | None, typer.Option(help="Filter by current stage.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Filter by pipeline.")] = None,
    doc_key: Annotated[str | None, typer.Option(help="Filter by document key.")] = None,
    created_after: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
    created_before: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Cursor from the previous page.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show doc keys.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List the tenant's jobs through the API, newest first."""
    with _Session(url, key) as api:
        items, next_cursor = api.list_summaries(
            status=status.value if status else None, stage=stage, pipeline=pipeline,
            doc_key=doc_key, created_after=created_after, created_before=created_before,
            limit=limit, cursor=cursor,
        )  # fmt: skip
    if as_json:
        console.print_json(json.dumps({"items": items, "next_cursor": next_cursor}))
        return
    console.print(jobs_table(items, verbose=verbose))
    if next_cursor:
        console.print(f"next page: --cursor {next_cursor}")


def job(
    job_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show the doc key.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Show one job and its history."""
    with _Session(url, key) as api:
        found, waiting = api.get_job_detail(job_id)
    if as_json:
        console.print_json(json.dumps({**found.model_dump(mode="json"),
                                       "admission": {"reason": waiting}}))  # fmt: skip
        return
    console.print(jobs_table([found], verbose=verbose))
    if waiting:
        console.print(f"[yellow]waiting:[/] {waiting}")
    table = Table("seq", "at", "kind", "status", "stage", "try", "note")
    for e in found.history:
        note = e.error.message if e.error else json.dumps(e.data) if e.data else ""
        moved = f"{e.from_status.value} -> " if e.from_status and e.kind == "transition" else ""
        table.add_row(str(e.seq), e.at.isoformat(timespec="seconds"), e.kind,
                      moved + e.to_status.value, e.stage or "", str(e.attempts), note)  # fmt: skip
    console.print(table)


def watch(
    job_ids: Annotated[list[str], typer.Argument(help="Jobs to follow.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Follow jobs live; exit 0 if all completed, 1 if any failed, 2 if any was cancelled."""
    session = _Session(url, key)
    with session as api:
        statuses = watch_jobs(api, job_ids, reconnects=session.cfg.api_watch_reconnects)
    for job_id, status in zip(job_ids, statuses, strict=True):
        console.print(f"{job_id}: {status.value}")
    raise typer.Exit(outcome_code(statuses))


def _control(action: str, job_ids: list[str], url: str | None, key: str | None) -> None:
    with _Session(url, key) as api:
        for job_id in job_ids:
            found, changed = api.control(job_id, action)
            note = "" if changed else " (unchanged)"
            console.print(f"{job_id}: {found.status.value}{note}")


def cancel(
    job_ids: Annotated[list[str], typer.Argument(help="Jobs to cancel.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel queued or running jobs (idempotent)."""
    _control("cancel", job_ids, url, key)


def retry(
    job_ids: Annotated[list[str], typer.Argument(help="Failed jobs to queue again.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Queue failed jobs again at the stage where they failed."""
    _control("retry", job_ids, url, key)


def serve(
    host: Annotated[str | None, typer.Option(help="Address [INGEST_RAY_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [INGEST_RAY_API_PORT].")] = None,
    replicas: Annotated[
        int | None, typer.Option(min=1, help="Ray Serve replicas [INGEST_RAY_API_REPLICAS].")
    ] = None,
) -> None:
    """Run the job API and the dashboard as a Ray Serve deployment, until interrupted."""
    # Ray Serve is heavy: import it only when serving
    from serve_app.server import run  # noqa: PLC0415
    from serve_app.settings import ApiSettings  # noqa: PLC0415

    api = ApiSettings()
    require_port(host or api.host, port or api.port, "the job API", "give --port")
    try:
        run(get_settings(), host or api.host, port or api.port, replicas or api.replicas, api=api,
            on_ready=lambda line: console.print(line, highlight=False, soft_wrap=True))  # fmt: skip
    except KeyboardInterrupt:  # stopped while starting; everything started is gone already
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add the HTTP commands to the ``ingest-ray`` app."""
    for command in (submit, jobs, job, watch, cancel, retry, serve):
        app.command()(command)
