"""The sandboxed parser child: ``python -m ingest_ray.parsing.worker {parse|probe|split} PDF``,
or ``probes`` (no PDF): a long-lived prober that reads one ``{"path": ...}`` line per PDF from
stdin and answers each (:class:`ingest_ray.parsing.sandbox.Prober`).

It caps its own address space (``RLIMIT_AS``), CPU time and core dumps *before* loading pdfium,
opens the PDF (rebuilding a malformed one once, see :mod:`ingest_ray.parsing.repair`), refuses
more than ``--max-pages`` pages, and writes exactly one JSON answer to stdout:
``{"ok": true, "pages", "items"?, "parts"?, "repaired"}`` or ``{"ok": false, "error", "message"}``
with
``error`` one of ``encrypted``, ``broken``, ``too_many_pages``, ``memory``. Anything else (a
crash, a signal) is judged by the parent from the exit status. Kept free of heavy imports so the
child starts fast and small.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MEMORY_ANSWER = b'{"ok": false, "error": "memory", "message": "address-space limit reached"}\n'
_MEMORY_MARKERS = ("memory", "map segment", "mmap")
EXIT_MEMORY = 3


def main(argv: list[str] | None = None) -> int:
    """Run one parse or probe and print its JSON answer (``probes``: one probe per line of
    stdin, one answer line each, until stdin ends); exit 0 unless memory ran out."""
    args = _arguments(argv)
    apply_limits(memory_mb=args.memory_mb, cpu_s=args.cpu_s)
    if args.op == "probes":
        return _probes(max_pages=args.max_pages)
    return _write_answer(
        functools.partial(
            run,
            args.op,
            Path(args.path),
            max_pages=args.max_pages,
            split_pages=args.split_pages,
            out=Path(args.out) if args.out else None,
        )
    )


def _probes(*, max_pages: int) -> int:
    """Probe the PDF each line of stdin names (``{"path": ...}``), answering in turn. A child
    that ran out of memory answers so and stops: what is left of it is not to be trusted."""
    for line in sys.stdin.buffer:
        path = Path(json.loads(line)["path"])
        status = _write_answer(functools.partial(run, "probe", path, max_pages=max_pages))
        if status != 0:
            return status
    return 0


def _write_answer(work: Callable[[], dict[str, Any]]) -> int:
    """Write ``work()``'s answer as one JSON line (or the memory answer); the exit status."""
    try:
        payload = json.dumps(work(), ensure_ascii=False, separators=(",", ":")).encode()
    except MemoryError:
        os.write(sys.stdout.fileno(), _MEMORY_ANSWER)
        return EXIT_MEMORY
    except OSError as exc:  # a shared library that cannot be mapped under the limit
        if not any(marker in str(exc).lower() for marker in _MEMORY_MARKERS):
            raise
        os.write(sys.stdout.fileno(), _MEMORY_ANSWER)
        return EXIT_MEMORY
    sys.stdout.buffer.write(payload + b"\n")
    sys.stdout.flush()
    return 0


def apply_limits(*, memory_mb: int, cpu_s: int) -> None:
    """Cap this process: address space, CPU seconds (a backstop to the parent's clock), no cores."""
    _cap(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    _cap(resource.RLIMIT_CPU, cpu_s)
    _cap(resource.RLIMIT_CORE, 0)


def run(
    op: str, path: Path, *, max_pages: int, split_pages: int = 0, out: Path | None = None
) -> dict[str, Any]:
    """Open ``path`` and probe it (page count), parse it into a content list, or split it into
    PDFs of at most ``split_pages`` pages each, written to ``out`` (``parts``: start, end, path;
    none when it is short enough)."""
    # pdfium is loaded only now, under the limits
    from ingest_ray.parsing import extract  # noqa: PLC0415
    from ingest_ray.parsing.layout import build_content_list  # noqa: PLC0415

    opened = _open(path.read_bytes())
    if isinstance(opened, dict):
        return opened
    document, repaired = opened
    try:
        pages = len(document)
        if pages > max_pages:
            return _error("too_many_pages", f"{pages} pages, more than the limit of {max_pages}")
        if op == "probe":
            return {"ok": True, "pages": pages, "repaired": repaired}
        if op == "split":
            parts = _split(document, pages, split_pages, out or path.parent)
            return {"ok": True, "pages": pages, "repaired": repaired, "parts": parts}
        try:
            lines, page_infos = extract.extract(document)
        except extract.PdfiumError as exc:
            return _error("broken", f"pdfium could not read a page: {exc}")
        items = build_content_list(lines, page_infos)
        return {"ok": True, "pages": pages, "items": items, "repaired": repaired}
    finally:
        document.close()


def _open(data: bytes) -> tuple[Any, bool] | dict[str, Any]:
    from ingest_ray.parsing import extract  # noqa: PLC0415 - after the limits, see run()
    from ingest_ray.parsing.repair import rebuild  # noqa: PLC0415

    try:
        return extract.open_document(data), False
    except extract.PdfiumError as exc:
        if extract.is_password_error(exc):
            return _error("encrypted", "the PDF is encrypted (a password is required)")
        first = str(exc)
    fixed = rebuild(data)
    if fixed is None:
        return _error("broken", f"not a readable PDF: {first}")
    try:
        document = extract.open_document(fixed)
    except extract.PdfiumError:
        return _error("broken", f"not a readable PDF, even rebuilt: {first}")
    if len(document) == 0:
        document.close()
        return _error("broken", f"not a readable PDF (no pages recovered): {first}")
    return document, True


def _split(document: Any, pages: int, split_pages: int, out: Path) -> list[list[Any]]:
    from ingest_ray.parsing import extract  # noqa: PLC0415 - after the limits, see run()
    from ingest_ray.parsing.batching import split_ranges  # noqa: PLC0415

    ranges = split_ranges(pages, split_pages)
    if len(ranges) == 1:
        return []
    parts: list[list[Any]] = []
    for start, end in ranges:
        target = out / f"pages-{start:05d}-{end:05d}.pdf"
        extract.write_pages(document, start, end, target)
        parts.append([start, end, str(target)])
    return parts


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": kind, "message": message}


def _cap(limit: int, value: int) -> None:
    """Set soft = ``value`` (hard one above it for CPU, so SIGXCPU comes before SIGKILL)."""
    _soft, hard = resource.getrlimit(limit)
    new_hard = value + 1 if limit == resource.RLIMIT_CPU else value
    if hard != resource.RLIM_INFINITY:
        value, new_hard = min(value, hard), min(new_hard, hard)
    resource.setrlimit(limit, (value, new_hard))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ingest_ray.parsing.worker")
    parser.add_argument("op", choices=("parse", "probe", "split", "probes"))
    parser.add_argument("path", nargs="?", default="")
    parser.add_argument("--max-pages", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-s", type=int, required=True)
    parser.add_argument("--split-pages", type=int, default=0)
    parser.add_argument("--out", default="")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
