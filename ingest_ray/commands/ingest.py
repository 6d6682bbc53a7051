"""``ingest-ray ingest``, ``ingest-ray search`` and ``ingest-ray demo`` (the main job).

Documents are shown by title, else file name, else DOI (``-v`` adds the ``doc_key``; ``--json``
prints every field). SIGINT or SIGTERM stops ``ingest`` and ``demo`` cleanly: the workers drain,
Ray is shut down and every Ray process they started is ended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

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

from ingest_ray import local_ray
from ingest_ray.commands.common import console, err_console, settings
from ingest_ray.config import Settings
from ingest_ray.documents import document_label
from ingest_ray.events import DocumentSource
from ingest_ray.index.search import run_entity_search, run_search
from ingest_ray.index.settings import IndexSettings
from ingest_ray.local_run import (
    RunReport,
    Tracked,
    expand_inputs,
    replay_settings,
    request_label,
    run_local,
    summary_rows,
)
from ingest_ray.pipelines.builtin import builtin_catalog
from ingest_ray.render import fit, hits_text
from ingest_ray.samples import write_samples
from ingest_ray.signals import StopSignals
from ingest_ray.stages.factories import section
from ingest_ray.text.settings import TextSettings

JsonOption = Annotated[bool, typer.Option("--json", help="Print every field as JSON.")]
VerboseOption = Annotated[bool, typer.Option("-v", "--verbose", help="Show doc keys too.")]


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
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Ingest documents end to end on this machine, with a progress bar per job."""
    sources = expand_inputs(inputs)
    if not sources:
        raise typer.BadParameter("no PDFs or identifiers found in the inputs")
    stop = StopSignals().install()
    report = _run(settings(), sources, replay, stop, tenant=tenant, priority=priority,
                  pipeline=pipeline, timeout=timeout)  # fmt: skip
    _print_report(report, as_json=as_json, verbose=verbose)
    if stop.received is not None:
        err_console.print(f"[yellow]stopped by {stop.received.name}[/]; unfinished jobs wait")
        raise typer.Exit(stop.exit_code())
    if report.failed:
        raise typer.Exit(1)


def _run(
    cfg: Settings,
    sources: Sequence[DocumentSource],
    replay: Path | None,
    stop: StopSignals,
    **kw: Any,
) -> RunReport:
    try:
        with replay_settings(cfg, replay) as effective:
            catalog = builtin_catalog(effective)
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, TimeElapsedColumn(), console=err_console) as progress:
                bars: dict[int, TaskID] = {}

                def show(tracked: list[Tracked]) -> None:
                    for i, t in enumerate(tracked):
                        stages = len(catalog.pipeline(t.job.pipeline).stages) if t.job else 1
                        done = len(t.job.outputs) if t.job else 0
                        name = document_label(t.job) if t.job else request_label(t.request)
                        label = fit(name, 40)
                        state = _state(t)
                        if i not in bars:
                            bars[i] = progress.add_task(label, total=stages)
                        progress.update(bars[i], total=stages, completed=min(done, stages),
                                        description=f"{label:<40} {state}")  # fmt: skip

                return run_local(effective, sources, catalog=catalog, on_progress=show,
                                 should_stop=stop.is_set, on_started=stop.started,
                                 **kw)  # fmt: skip
    except KeyboardInterrupt:  # stopped while starting, or a second signal cut the drain short
        raise typer.Exit(stop.exit_code()) from None
    finally:
        local_ray.stop()


def _state(t: Tracked) -> str:
    if t.job is None:
        return "submitted"
    return t.job.status.value if t.job.status.is_terminal else t.job.stage or "queued"


def _print_report(report: RunReport, *, as_json: bool, verbose: bool) -> None:
    rows = summary_rows(report)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("document", "status", "pages", "chunks", "pdf from", "note")
    table.columns[0].overflow, table.columns[0].max_width = "fold", 48
    if verbose:
        table.add_column("doc_key", overflow="fold")
    for row in rows:
        style = "green" if row["status"] == "completed" else "red"
        cells = [str(row[c]) for c in ("document", "status", "pages", "chunks", "pdf from", "note")]
        table.add_row(*cells, *([row["doc_key"]] if verbose else []), style=style)
    console.print(table)


def search(
    query: Annotated[str | None, typer.Argument(help="Words or a sentence to look for.")] = None,
    k: Annotated[int, typer.Option(min=1, max=100)] = 10,
    tenant: Annotated[str | None, typer.Option()] = None,
    entity: Annotated[
        str | None, typer.Option(help="ORCID, ROR, DOI or OpenAlex id instead of text.")
    ] = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Hybrid search (vector + full text) over indexed documents, or documents by entity."""
    cfg = settings()
    index = section(cfg, "index", IndexSettings)
    if entity:
        found = [h.model_dump(mode="json") for h in run_entity_search(index, entity, tenant)]
        _print_entities(found, as_json=as_json, verbose=verbose)
        return
    if not query:
        raise typer.BadParameter("give a QUERY or --entity")
    hits = run_search(index, query, k, tenant, text_settings=section(cfg, "text", TextSettings))
    _print_hits([h.model_dump(mode="json") for h in hits], as_json=as_json, verbose=verbose)


def _print_hits(hits: list[dict[str, Any]], *, as_json: bool, verbose: bool) -> None:
    if as_json:
        console.print_json(json.dumps(hits))
        return
    console.print(hits_text(hits, console.width, verbose=verbose), end="", soft_wrap=True)
    console.print(f"{len(hits)} hit(s)")


def _print_entities(hits: list[dict[str, Any]], *, as_json: bool, verbose: bool) -> None:
    if as_json:
        console.print_json(json.dumps(hits))
        return
    table = Table("document", "entity", "type")
    first = table.columns[0]
    first.overflow, first.no_wrap, first.ratio = "ellipsis", True, 1
    if verbose:
        table.add_column("doc_key", overflow="fold")
    for hit in hits:
        cells = [_label(hit), str(hit.get("entity_id") or ""), str(hit.get("entity_type") or "")]
        table.add_row(*cells, *([str(hit.get("doc_key"))] if verbose else []))
    console.print(table)
    console.print(f"{len(hits)} document(s)")


def _label(hit: Mapping[str, Any]) -> str:
    doc_key = str(hit.get("doc_key") or "")
    return str(hit.get("title") or hit.get("doi") or doc_key.rsplit("/", 1)[-1])


def demo(verbose: VerboseOption = False) -> None:
    """The main job: write sample PDFs, ingest them end to end, then search them."""
    cfg = settings()
    folder = cfg.state_dir / "samples"
    paths = write_samples(folder)
    console.print(f"wrote {len(paths)} sample PDFs to {folder}")
    stop = StopSignals().install()
    report = _run(cfg, expand_inputs([str(folder)]), None, stop, tenant="demo", priority=5,
                  pipeline=None, timeout=900.0)  # fmt: skip
    _print_report(report, as_json=False, verbose=verbose)
    if stop.received is not None:
        raise typer.Exit(stop.exit_code())
    question = "how does hybrid search fuse vector and full-text rankings"
    console.print(f"\nsearch: [bold]{question}[/]")
    index = section(cfg, "index", IndexSettings)
    found = run_search(index, question, 3, "demo", text_settings=section(cfg, "text", TextSettings))
    _print_hits([h.model_dump(mode="json") for h in found], as_json=False, verbose=verbose)
    console.print("\nsearch --entity 10.5555/ingest-ray.sample")
    cited = [
        h.model_dump(mode="json")
        for h in run_entity_search(index, "10.5555/ingest-ray.sample", "demo")
    ]
    _print_entities(cited, as_json=False, verbose=verbose)
    if report.failed or not found:
        raise typer.Exit(1)
