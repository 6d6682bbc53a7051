"""MinerU in-process, for GPU actors that have the ``mineru`` package and its models installed.

MinerU loads its models once per process and keeps them, so this mode runs in the actor itself
(one parse at a time, in a worker thread so the event loop stays responsive) through MinerU's
documented Python entry point ``mineru.cli.common.do_parse``, which writes
``<name>_content_list.json`` into an output directory. Nothing here runs unless the package is
importable; the import happens on first use, never at module import.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path
from typing import Any

from ingest_ray.parsing.errors import MineruResultError
from ingest_ray.parsing.settings import ParseSettings


def mineru_available() -> bool:
    """Whether the ``mineru`` package can be imported here (checked without importing it)."""
    try:
        return importlib.util.find_spec("mineru") is not None
    except (ImportError, ValueError):
        return False


def parse_with_mineru(pdf_bytes: bytes, name: str, settings: ParseSettings) -> Any:
    """Run MinerU on ``pdf_bytes`` and return the raw content list it wrote (blocking)."""
    # imported on first use only: the package is optional and heavy (torch, models)
    from mineru.cli.common import do_parse  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="ingest-ray-mineru-") as out:
        do_parse(
            out,
            [name],
            [pdf_bytes],
            [settings.mineru_lang],
            backend=settings.mineru_backend,
            parse_method=settings.mineru_parse_method,
            f_draw_layout_bbox=False,
            f_draw_span_bbox=False,
            f_dump_md=False,
            f_dump_middle_json=False,
            f_dump_model_output=False,
            f_dump_orig_pdf=False,
            f_dump_content_list=True,
            start_page_id=0,
            end_page_id=settings.max_pages - 1,
        )
        found = sorted(Path(out).rglob(f"{name}_content_list.json"))
        if not found:
            raise MineruResultError("MinerU wrote no content list")
        return json.loads(found[0].read_text(encoding="utf-8"))
