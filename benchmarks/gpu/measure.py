"""The child side of ``benchmarks.gpu.check``: parse PDFs one way and print one JSON line.

    python -m benchmarks.gpu.measure {direct|ingest_ray} TIER PDF...

``direct``: MinerU's own entry point, ``mineru.parser.MinerUParser(tier).parse(pdf)`` per file.
``ingest_ray``: ``MineruInProcessParser.parse_many`` (probe, split, ``k`` in flight) with
``mode=inprocess`` and the same tier. Both load the models first (one warm-up page), so the
timing is of parsing, not of loading.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


def direct(tier: str, pdfs: list[Path]) -> tuple[int, float]:
    from mineru.parser import MinerUParser  # noqa: PLC0415 - only on the GPU machine

    parser = MinerUParser(tier=tier)  # type: ignore[arg-type]
    parser.parse(pdfs[0], page_range="1")  # warm-up: load the models
    started, pages = time.perf_counter(), 0
    for pdf in pdfs:
        pages += len(parser.parse(pdf).pages)
    return pages, time.perf_counter() - started


def through_ingest_ray(tier: str, pdfs: list[Path]) -> tuple[int, float]:
    from ingest_ray.parsing.parsers import MineruInProcessParser, ParseResult  # noqa: PLC0415
    from ingest_ray.parsing.settings import ParseSettings  # noqa: PLC0415

    parser = MineruInProcessParser(ParseSettings(mode="inprocess", mineru_tier=tier))  # type: ignore[arg-type]
    parser.engine.parse(pdfs[0], 0, 1, 2)  # warm-up: load the models
    started = time.perf_counter()
    results = asyncio.run(parser.parse_many(pdfs))
    seconds = time.perf_counter() - started
    failed = [r for r in results if not isinstance(r, ParseResult)]
    if failed:
        raise SystemExit(f"{len(failed)} PDFs failed: {failed[0]!r}")
    return sum(r.pages for r in results if isinstance(r, ParseResult)), seconds


def main() -> None:
    way, tier, *paths = sys.argv[1:]
    pdfs = [Path(p) for p in paths]
    pages, seconds = (direct if way == "direct" else through_ingest_ray)(tier, pdfs)
    print(json.dumps({"way": way, "pages": pages, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
