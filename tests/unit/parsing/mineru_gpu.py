"""The stand-in MinerU's "GPU": ``slots`` worker threads that each take ``call_overhead_s`` plus
``page_time_s`` per page for a task, in arrival order, with the time they were busy recorded.

That is the model of a GPU parser the benchmark measures against: a fixed cost per request (the
model call, moving a batch on and off the device), a fixed cost per page, and a concurrency
limit. :meth:`Gpu.busy_s` is the union of the busy intervals inside a window, so ``busy / wall``
says how much of the time at least one slot was working.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pypdfium2 as pdfium


@dataclass
class Job:
    """One task on the GPU: its files' page counts, and when it ran."""

    pages: list[int]
    status: str = "queued"
    started: float | None = None
    ended: float | None = None
    on_done: Callable[[Job], None] | None = None


@dataclass
class Gpu:
    """``slots`` workers; a task takes ``call_overhead_s + page_time_s * pages``."""

    page_time_s: float
    call_overhead_s: float = 0.0
    slots: int = 1
    intervals: list[tuple[float, float]] = field(default_factory=list)
    _queue: queue.Queue[Job | None] = field(default_factory=queue.Queue)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start the slot threads."""
        for _ in range(self.slots):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Let the slot threads end."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        """Queue a task."""
        self._queue.put(job)

    def busy_s(self, since: float, until: float) -> float:
        """Seconds within ``[since, until]`` when at least one slot was working."""
        with self._lock:
            spans = sorted((max(a, since), min(b, until)) for a, b in self.intervals)
        total, cursor = 0.0, since
        for first, end in spans:
            begin = max(first, cursor)
            if end > begin:
                total += end - begin
                cursor = end
        return total

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.status == "canceled":
                continue
            job.status, job.started = "running", time.monotonic()
            time.sleep(self.call_overhead_s + self.page_time_s * sum(job.pages))
            job.ended = time.monotonic()
            with self._lock:
                self.intervals.append((job.started, job.ended))
            if job.status == "running":
                job.status = "completed"
            if job.on_done is not None:
                job.on_done(job)


def page_count(data: bytes) -> int:
    """Pages of an uploaded PDF (0 when pdfium cannot open it)."""
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return 0
    try:
        return len(document)
    finally:
        document.close()


def middle_json(name: str, pages: int) -> dict[str, Any]:
    """A MinerU 4.x middle JSON (``docvortex.middle`` 2.0) with a title and one paragraph per
    page, each saying which page of which upload it stands for."""
    out = []
    for page in range(pages):
        blocks: list[dict[str, Any]] = []
        if page == 0:
            blocks.append(_block("doc_title", 0, f"Upload {name}", level=1))
        blocks.append(_block("text", len(blocks), f"Text of page {page} of {name}."))
        out.append({"page_idx": page, "blocks": blocks})
    return {
        "schema": "docvortex.middle",
        "schema_version": "2.0",
        "metadata": {"file_suffix": "pdf", "producer": {"name": "stand-in", "version": "0"}},
        "extensions": {},
        "is_full_document": True,
        "pages": out,
    }


def _block(kind: str, index: int, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "index": index,
        "bbox": [0.1, 0.1 + 0.1 * index, 0.9, 0.15 + 0.1 * index],
        "content": [{"type": "text", "content": text}],
        **extra,
    }
