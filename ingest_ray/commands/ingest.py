"""``ingest-ray ingest``, ``ingest-ray search`` and ``ingest-ray demo`` (the main job)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ingest_ray.commands.common import console, settings
from ingest_ray.config import Settings
from ingest_ray.index.search import run_entity_search, run_search
from ingest_ray.index.settings import IndexSettings
from ingest_ray.local_run import (
    RunReport,
    Tracked,
    expand_inputs,
    replay_settings,
    run_local,
    summary_rows,
)
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.samples import write_samples
from ingest_ray.stages.factories import section
from ingest_ray.text.settings import TextSettings


def ingest(
    inputs: Annotated[
        list[str], typer.Argument(help="PDF files, folders of PDFs, DOIs, OpenAlex ids, PDF URLs.")
    ],
    replay: Annotated[
        Path | None, typer.Option(help="Serve captured API responses from DIR (offline DOIs).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant the documents belong to.")] = "default",
    priority: Annotated[int, typer.Option(min=0, max=9)] = 5,
    pipeline: Annotated[
        str | None, typer.Option(help="auto | two_phase (chosen per input when omitted).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for all jobs.")] = 900.0,
) -> None:
    """Ingest documents end to end on this machine, with a progress bar per job."""
    sources = expand_inputs(inputs)
    if not sources:
        raise typer.BadParameter("no PDFs or identifiers found in the inputs")
    report = _run(
        settings(),
        sources,
        replay,
        tenant=tenant,
        priority=priority,
        pipeline=pipeline,
        timeout=timeout,
    )
    if report.failed:
        raise typer.Exit(1)


def _run(cfg: Settings, sources: list, replay: Path | None, **kw: object) -> RunReport:  # type: ignore[type-arg]
    with replay_settings(cfg, replay) as effective:
        catalog = builtin_catalog(effective)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            bars: dict[int, TaskID] = {}

            def show(tracked: list[Tracked]) -> None:
                for i, t in enumerate(tracked):
                    stages = len(catalog.pipeline(t.job.pipeline).stages) if t.job else 1
                    done = len(t.job.outputs) if t.job else 0
                    label = t.request.source.value.rsplit("/", 1)[-1][:40]
                    state = (t.job.status.value if t.job and t.job.status.is_terminal
                             else (t.job.stage or "queued") if t.job else "submitted")  # fmt: skip
                    if i not in bars:
                        bars[i] = progress.add_task(label, total=stages)
                    progress.update(bars[i], total=stages, completed=min(done, stages),
                                    description=f"{label:<40} {state}")  # fmt: skip

            report = run_local(effective, sources, catalog=catalog, on_progress=show, **kw)  # type: ignore[arg-type]
    table = Table("document", "status", "pages", "chunks", "pdf from", "note")
    for row in summary_rows(report):
        style = "green" if row["status"] == "completed" else "red"
        table.add_row(*(str(v) for v in row.values()), style=style)
    console.print(table)
    return report


def search(
    query: Annotated[str | None, typer.Argument(help="Words or a sentence to look for.")] = None,
    k: Annotated[int, typer.Option(min=1, max=100)] = 10,
    tenant: Annotated[str | None, typer.Option()] = None,
    entity: Annotated[
        str | None, typer.Option(help="ORCID, ROR, DOI or OpenAlex id instead of text.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Hybrid search (vector + full text) over indexed documents, or documents by entity."""
    cfg = settings()
    index = section(cfg, "index", IndexSettings)
    if entity:
        hits = [h.model_dump(mode="json") for h in run_entity_search(index, entity, tenant)]
        _print_hits(hits, as_json, ("doc_key", "title", "entity_type", "entity_id"))
        return
    if not query:
        raise typer.BadParameter("give a QUERY or --entity")
    found = run_search(index, query, k, tenant, text_settings=section(cfg, "text", TextSettings))
    _print_hits([h.model_dump(mode="json") for h in found], as_json,
                ("doc_key", "title", "page_start", "section_path", "snippet", "score"))  # fmt: skip


def _print_hits(hits: list[dict], as_json: bool, columns: tuple[str, ...]) -> None:  # type: ignore[type-arg]
    if as_json:
        console.print_json(json.dumps(hits))
        return
    table = Table(*columns)
    for hit in hits:
        table.add_row(*(_cell(hit.get(c)) for c in columns))
    console.print(table)
    console.print(f"{len(hits)} hit(s)")


def _cell(value: object) -> str:
    if isinstance(value, list):
        return " > ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def demo() -> None:
    """The main job: write sample PDFs, ingest them end to end, then search them."""
    cfg = settings()
    folder = cfg.state_dir / "samples"
    paths = write_samples(folder)
    console.print(f"wrote {len(paths)} sample PDFs to {folder}")
    report = _run(
        cfg,
        expand_inputs([str(folder)]),
        None,
        tenant="demo",
        priority=5,
        pipeline=None,
        timeout=900.0,
    )
    question = "how does hybrid search fuse vector and full-text rankings"
    console.print(f"\nsearch: [bold]{question}[/]")
    index = section(cfg, "index", IndexSettings)
    found = run_search(index, question, 3, "demo", text_settings=section(cfg, "text", TextSettings))
    _print_hits(
        [h.model_dump(mode="json") for h in found],
        False,
        ("doc_key", "title", "page_start", "section_path", "snippet"),
    )
    console.print("\nsearch --entity 10.5555/ingest-ray.sample")
    cited = [
        h.model_dump(mode="json")
        for h in run_entity_search(index, "10.5555/ingest-ray.sample", "demo")
    ]
    _print_hits(cited, False, ("doc_key", "title", "entity_type", "entity_id"))
    if report.failed or not found:
        raise typer.Exit(1)
