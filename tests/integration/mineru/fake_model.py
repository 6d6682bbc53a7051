"""MinerU's model inference replaced by the project's pdfium parser, and nothing else.

MinerU 4.x turns a PDF into a *model list* (``mineru.backend.analysis.pdf.pipeline.analyze_pdf``:
layout detection, OCR, formula and table recognition on a GPU), then its own post-processing
(``docvortex``'s ``model_json_to_middle_json``) builds the middle JSON every output is rendered
from. :func:`install` swaps only ``analyze_pdf`` for :func:`pdfium_analyze_pdf`, which reads the
text layer with ``ingest_ray.parsing.worker.run`` (the CPU parser) and writes MinerU's raw model
blocks (``text`` / ``doc_title`` / ``paragraph_title`` / ``image`` with page-relative 0-1 boxes
and line boxes, the shape MinerU's normaliser accepts). Everything after the model call - page
range rewriting, normalisation, middle JSON, validation, rendering, the HTTP layer - is MinerU's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from ingest_ray.parsing import worker

#: every call of the replaced model: (page count of the PDF it was given, effort)
CALLS: list[tuple[int, str]] = []
#: calls started (a call MinerU's caller gave up on still runs to its end in its thread)
STARTED: list[float] = []
#: seconds each call takes on top of the parse (a slow "GPU", to cancel or time out a task)
DELAY_S = 0.0


def pdfium_analyze_pdf(
    file_bytes: bytes,
    effort: str = "high",
    parse_mode: str = "auto",
    image_analysis: bool = True,
    vlm_config: Any = None,
) -> Any:
    """Stands in for ``analyze_pdf``: the same arguments, an ``AnalysisResult`` back. Only the
    inference is ours; MinerU's own result building (normalisation, page geometry) runs."""
    from docvortex.document.pdf.pdfium import pdfium_guard

    started = time.perf_counter()
    STARTED.append(started)
    time.sleep(DELAY_S)
    # the real model's pdfium use is MinerU's and takes MinerU's pdfium lock; ours must too
    # (pdfium is not thread-safe, and MinerU's router runs several tasks at once)
    with pdfium_guard():
        return _analyze(file_bytes, effort, parse_mode, started)


def _analyze(file_bytes: bytes, effort: str, parse_mode: str, started: float) -> Any:
    from docvortex.document.pdf import PDFDocument
    from mineru.backend.analysis.pdf import pipeline

    sizes = _page_sizes(file_bytes)
    with tempfile.TemporaryDirectory(prefix="fake-mineru-model-") as tmp:
        path = Path(tmp) / "in.pdf"
        path.write_bytes(file_bytes)
        answer = worker.run("parse", path, max_pages=100_000)
    if not answer.get("ok"):
        raise ValueError(f"pdfium could not read the PDF: {answer.get('message')}")
    model_list: list[list[dict[str, Any]]] = [[] for _ in sizes]
    for item in answer["items"]:
        block = _block(item, sizes[item["page_idx"]])
        if block is not None:
            model_list[item["page_idx"]].append(block)
    CALLS.append((len(sizes), effort))
    state = pipeline._PDFAnalysis(
        document=PDFDocument(file_bytes), parse_mode="ocr" if parse_mode == "ocr" else "txt"
    )
    try:
        return pipeline._build_pdf_analysis_result(state, model_list, effort, started)
    finally:
        pipeline._close_analysis(state)


def install(monkeypatch: Any | None = None) -> None:
    """Replace MinerU's PDF model call in this process (with ``monkeypatch`` in a test)."""
    from mineru.backend.analysis.pdf import pipeline

    if monkeypatch is not None:
        monkeypatch.setattr(pipeline, "analyze_pdf", pdfium_analyze_pdf)
    else:
        pipeline.analyze_pdf = pdfium_analyze_pdf  # type: ignore[assignment]


def _page_sizes(data: bytes) -> list[tuple[float, float]]:
    document = pdfium.PdfDocument(data)
    try:
        return [tuple(document[i].get_size()) for i in range(len(document))]  # type: ignore[misc]
    finally:
        document.close()


def _block(item: dict[str, Any], size: tuple[float, float]) -> dict[str, Any] | None:
    box = _normalised(item.get("bbox"), size)
    if box is None:
        return None
    level = item.get("text_level")
    if item["type"] == "image":
        return {"type": "image", "bbox": box, "content": ""}
    text = str(item.get("text") or "")
    if not text.strip():
        return None
    block: dict[str, Any] = {"type": "text", "bbox": box, "content": text, "lines": [{"bbox": box}]}
    if level == 1:
        block.update(type="doc_title", level=1)
    elif isinstance(level, int):
        block.update(type="paragraph_title", level=min(max(level, 2), 6))
    return block


def _normalised(bbox: Any, size: tuple[float, float]) -> list[float] | None:
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None
    width, height = size
    x0, y0 = max(0.0, bbox[0] / width), max(0.0, bbox[1] / height)
    x1, y1 = min(1.0, bbox[2] / width), min(1.0, bbox[3] / height)
    if x1 - x0 < 1e-3 or y1 - y0 < 1e-3:
        return None
    return [round(x0, 4), round(y0, 4), round(x1, 4), round(y1, 4)]
