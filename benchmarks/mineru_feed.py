"""Feeding a GPU parser: pages/s and server busy time of the ``mineru`` stage against the
stand-in MinerU ``/v1`` server, with and without batching, splitting and ``k`` in flight.

    python -m benchmarks.mineru_feed --json benchmarks/results/mineru_feed.json

The stand-in (``tests/unit/parsing/mineru_server.py`` + ``mineru_gpu.py``) runs each task on a
"GPU" of ``--slots`` workers taking ``--call-overhead`` seconds per task plus ``--page-time``
seconds per page; it reports the time at least one slot was working. A backlog of synthetic PDFs
(page counts cycling through ``--pages``) is fed to the real ``MineruStage`` the way the runtime's
pool does: ``dispatches`` concurrent ``run_batch`` calls of up to ``batch`` jobs each, a new one
as soon as one returns. Every run parses the same documents; each configuration is one row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import StageInput, StageOutput
from ingest_ray.stages.mineru import MineruStage
from ingest_ray.storage.blobs import FileBlobStore
from tests.unit.parsing.mineru_gpu import Gpu
from tests.unit.parsing.mineru_server import FakeMineru, serve_mineru
from tests.unit.parsing.pdfs import make_pdf


@dataclass(frozen=True)
class Config:
    """One way of feeding the server."""

    name: str
    batch: int  # jobs per run_batch call (the pool's batch_size)
    dispatches: int  # run_batch calls at once (the pool's max_in_flight)
    batch_pages: int  # mineru_batch_pages (0: one document per request)
    split_pages: int  # mineru_split_pages (0: never split)
    in_flight: int  # mineru_in_flight (k)
    servers: int = 1


CONFIGS = [
    Config("one document at a time, k=1", 1, 1, 0, 0, 1),
    Config("one document per request, k=2", 1, 2, 0, 0, 2),
    Config("batched (64 pages/request), k=1", 8, 1, 64, 0, 1),
    Config("batched + split 16, k=2 (default shape)", 8, 2, 64, 16, 2),
    Config("2 servers: one document per request, k=2", 1, 4, 0, 0, 2, servers=2),
    Config("2 servers: batched + split 16, k=2", 8, 4, 64, 16, 2, servers=2),
]


def _documents(blobs: FileBlobStore, pages: list[int], count: int) -> list[tuple[str, int]]:
    docs = []
    for index in range(count):
        n = pages[index % len(pages)]
        lines = [[f"Document {index}, page {p}: some words on this page."] for p in range(n)]
        docs.append((blobs.put(make_pdf(lines)), n))
    return docs


def _job(index: int, digest: str) -> StageInput:
    return StageInput(
        job_id=f"bench-{index}", tenant_id="bench", doc_key=f"bench:{index}",
        pipeline="two_phase", stage="mineru", attempt=1,
        source=DocumentSource(kind=SourceKind.PDF_URL, value="https://example.org/x.pdf"),
        outputs={"pdf_fetch": {"pdf_sha256": digest}},
    )  # fmt: skip


async def _feed(stage: MineruStage, jobs: list[StageInput], config: Config) -> list[Any]:
    backlog = list(reversed(jobs))
    results: list[Any] = []

    async def dispatcher() -> None:
        while backlog:
            batch = [backlog.pop() for _ in range(min(config.batch, len(backlog)))]
            results.extend(await stage.run_batch(batch))

    await asyncio.gather(*(dispatcher() for _ in range(config.dispatches)))
    return results


def run_one(config: Config, args: argparse.Namespace, blobs: FileBlobStore,
            docs: list[tuple[str, int]]) -> dict[str, Any]:  # fmt: skip
    """Feed the backlog to fresh stand-in servers with ``config``; its figures."""
    gpus = [Gpu(args.page_time, args.call_overhead, args.slots) for _ in range(config.servers)]
    states = [FakeMineru(generation="v1", gpu=g) for g in gpus]
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(serve_mineru(state)).url for state in states]
        settings = ParseSettings(
            mode="api", mineru_urls=urls, mineru_api_style="v1",
            poll_interval_s=args.poll, mineru_in_flight=config.in_flight,
            mineru_batch_pages=config.batch_pages, mineru_split_pages=config.split_pages,
        )  # fmt: skip
        stage = MineruStage(settings, blobs)
        jobs = [_job(i, d) for i, (d, _) in enumerate(docs)]
        started = time.monotonic()
        results = asyncio.run(_run(stage, jobs, config))
        ended = time.monotonic()
    wall = ended - started
    busy = [g.busy_s(started, ended) for g in gpus]
    spans = [span for g in gpus for span in g.intervals]
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    backlog = [g.busy_s(first, last) for g in gpus]
    pages = sum(n for _, n in docs)
    failed = [r for r in results if not isinstance(r, StageOutput)]
    tasks = sum(len(s.tasks) for s in states)
    return {
        **asdict(config),
        "documents": len(docs),
        "pages": pages,
        "failed": len(failed),
        "requests": tasks,
        "wall_s": round(wall, 2),
        "pages_per_s": round(pages / wall, 2),
        # the share of the run at least one slot of a server worked, averaged over servers
        "server_busy": round(sum(busy) / (wall * len(gpus)), 3),
        # the same from the first task's start to the last one's end (the backlog period)
        "server_busy_backlog": round(sum(backlog) / ((last - first) * len(gpus)), 3),
        # what the servers could do with this run's requests if they never waited
        "ceiling_pages_per_s": round(
            config.servers * args.slots / (args.page_time + args.call_overhead * tasks / pages), 2
        ),
    }


async def _run(stage: MineruStage, jobs: list[StageInput], config: Config) -> list[Any]:
    try:
        return await _feed(stage, jobs, config)
    finally:
        await stage.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=48)
    parser.add_argument("--pages", default="1,3,4,6,10,16,40", help="page counts, cycled")
    parser.add_argument("--page-time", type=float, default=0.04, help="GPU seconds per page")
    parser.add_argument("--call-overhead", type=float, default=0.4, help="GPU seconds per task")
    parser.add_argument("--slots", type=int, default=1, help="tasks a server runs at once")
    parser.add_argument("--poll", type=float, default=0.25, help="poll_interval_s")
    parser.add_argument("--only", default="", help="run only configs whose name contains this")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pages = [int(p) for p in args.pages.split(",")]
    args.pages_avg = sum(pages) / len(pages)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mineru-feed-") as tmp:
        blobs = FileBlobStore(Path(tmp) / "blobs")
        docs = _documents(blobs, pages, args.documents)
        for config in (c for c in CONFIGS if args.only in c.name):
            row = run_one(config, args, blobs, docs)
            rows.append(row)
            print(
                f"{row['name']:<44} {row['pages_per_s']:>7.2f} pages/s  busy "
                f"{row['server_busy']:>6.1%} (backlog {row['server_busy_backlog']:>6.1%})  "
                f"requests {row['requests']:>4}  wall {row['wall_s']:>6.1f} s"
            )
    report = {"parameters": {k: v for k, v in vars(args).items() if k != "json"}, "runs": rows}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
