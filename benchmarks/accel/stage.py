"""The simulated accelerator: a stage that stands in for MinerU on a GPU.

Its actor holds one unit of a custom Ray resource (the ``mineru`` pool asks for
``Settings.mineru_resource``), so the cluster's units are the slots. A call takes the page count
``pdf_fetch`` probed (it probes ahead of an accelerator; without it: pdfium here, milliseconds,
and the parser's sandboxed probe for a PDF pdfium cannot open), then occupies
the slot for ``service_s_per_page`` per page: one call at a time per slot (a GPU runs one MinerU
batch at a time; a second call queued on the actor waits). It writes a content list of one short
paragraph per page, so the real chunk, embed and index stages run after it, and logs each busy
interval to ``{timing_dir}/accel.{pid}.jsonl`` as ``start end pages``.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import pypdfium2 as pdfium  # type: ignore[import-untyped]

from benchmarks.pdf.timing import bench_section
from ingest_ray.config import Settings
from ingest_ray.parsing.sandbox import run_sandboxed
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import BaseStage, StageInput, StageOutput
from ingest_ray.stages.factories import blob_store
from ingest_ray.storage.blobs import BlobStore

FACTORY = "benchmarks.accel.stage:SimAccelStage"


class SimAccelStage(BaseStage):
    """Holds its slot for a fixed time per page; emits a small content list."""

    name: ClassVar[str] = "mineru"
    batch_size: ClassVar[int] = 1

    def __init__(self, settings: Settings) -> None:
        section = bench_section(settings)
        self.service_s_per_page = float(section.get("service_s_per_page", 0.05))
        self.blobs: BlobStore = blob_store(settings)
        self.log = Path(section["timing_dir"]) / f"accel.{os.getpid()}.jsonl"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._slot = asyncio.Lock()

    async def run(self, item: StageInput) -> StageOutput:
        """Occupy the slot for the document's pages, then hand on a content list."""
        fetched = item.outputs["pdf_fetch"]
        known = fetched.get("pdf_pages")  # probed by pdf_fetch ahead of the accelerator
        pages = (
            known
            if isinstance(known, int)
            else await _pages(self.blobs.path(fetched["pdf_sha256"]))
        )
        async with self._slot:
            start = time.time()
            await asyncio.sleep(pages * self.service_s_per_page)
            end = time.time()
        with self.log.open("a") as out:
            out.write(f"{start} {end} {pages}\n")
        items = [_paragraph(item.doc_key, page) for page in range(pages)]
        content_sha256 = self.blobs.put_json(items)
        data = {"content_sha256": content_sha256, "pages": pages, "items": len(items),
                "parser": "simulated-accelerator"}  # fmt: skip
        return StageOutput(data=data)


async def _pages(path: Path) -> int:
    """pdfium's page count; a PDF it cannot open goes to the parser's own probe (which repairs)."""
    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return (await run_sandboxed("probe", path, ParseSettings(mode="cpu"))).pages
    try:
        return len(document)
    finally:
        document.close()


def _paragraph(doc_key: str, page: int) -> dict[str, Any]:
    text = (f"Page {page + 1} of {doc_key}, as parsed by the simulated accelerator: a short "
            "paragraph that the chunk, embed and index stages process as usual.")  # fmt: skip
    return {"type": "text", "text": text, "page_idx": page}


def busy_intervals(directory: Path) -> dict[int, list[tuple[float, float, int]]]:
    """Per slot process: the (start, end, pages) of every call."""
    out: dict[int, list[tuple[float, float, int]]] = {}
    for path in directory.glob("accel.*.jsonl"):
        pid = int(path.name.split(".")[1])
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        out[pid] = [(float(a), float(b), int(c)) for a, b, c in rows]
    return out


def utilisation(intervals: dict[int, list[tuple[float, float, int]]], slots: int) -> dict[str, Any]:
    """Busy slot-seconds over ``slots`` x the wall time between the first call's start and the
    last call's end."""
    calls = [c for rows in intervals.values() for c in rows]
    if not calls:
        return {"calls": 0, "slot_utilisation": 0.0}
    first, last = min(c[0] for c in calls), max(c[1] for c in calls)
    busy = sum(c[1] - c[0] for c in calls)
    window = last - first
    ordered = sorted(intervals.values(), key=lambda r: min(c[0] for c in r))
    per_slot = [{"first_call_s": round(min(c[0] for c in rows) - first, 2),
                 "last_end_s": round(max(c[1] for c in rows) - first, 2),
                 "busy_s": round(sum(c[1] - c[0] for c in rows), 2), "calls": len(rows)}
                for rows in ordered]  # fmt: skip
    return {
        "calls": len(calls), "pages": sum(c[2] for c in calls), "slots": slots,
        "slot_processes": len(intervals), "busy_slot_s": round(busy, 2),
        "window_s": round(window, 2),
        "slot_utilisation": round(busy / (slots * window), 4) if window > 0 else 0.0,
        "first_call_at": first, "last_call_end_at": last, "per_slot": per_slot,
        "busy_slots_by_second": _by_second(calls, first, last),
    }  # fmt: skip


def _by_second(calls: list[tuple[float, float, int]], first: float, last: float) -> list[float]:
    """Busy slots on average in each second of the window: where the idle time fell."""
    seconds = [0.0] * max(1, math.ceil(last - first))
    for start, end, _pages in calls:
        a, b = start - first, end - first
        for second in range(int(a), min(len(seconds), int(b) + 1)):
            seconds[second] += max(0.0, min(b, second + 1) - max(a, second))
    return [round(busy, 2) for busy in seconds]
