"""The corpus: copies of the fixture PDFs under distinct names, with their page counts."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from ingest_ray.parsing.errors import ParseError
from ingest_ray.parsing.sandbox import run_sandboxed
from ingest_ray.parsing.settings import ParseSettings

FIXTURE_PDFS = Path("/work/shared/fixtures/pdfs")


@dataclass(frozen=True, slots=True)
class Corpus:
    """The documents of one run and their pages."""

    root: Path
    paths: tuple[Path, ...]
    pages: dict[str, int]
    skipped: tuple[str, ...]

    @property
    def total_pages(self) -> int:
        """Pages of all documents."""
        return sum(self.pages.values())

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {"docs": len(self.paths), "pages": self.total_pages,
                "sources": len({p.name.split("__", 1)[1] for p in self.paths}),
                "skipped": list(self.skipped)}  # fmt: skip


def page_count(path: Path) -> int | str:
    """Pages of a PDF as the pipeline's parser counts them (its sandboxed probe, which repairs
    what it can), or why it cannot be read (an encrypted PDF, for one)."""
    try:
        return asyncio.run(run_sandboxed("probe", path, ParseSettings(mode="cpu"))).pages
    except ParseError as exc:
        return f"{path.name}: {exc.error_type}"


def build_corpus(root: Path, docs: int, source: Path = FIXTURE_PDFS) -> Corpus:
    """``docs`` copies of the readable fixture PDFs, taken in turn, named ``0007__name.pdf``."""
    readable: list[tuple[Path, int]] = []
    skipped: list[str] = []
    for pdf in sorted(source.glob("*.pdf")):
        pages = page_count(pdf)
        if isinstance(pages, str):
            skipped.append(pages)
        else:
            readable.append((pdf, pages))
    if not readable:
        raise RuntimeError(f"no readable PDFs in {source}")
    root.mkdir(parents=True, exist_ok=True)
    paths, counts = [], {}
    for i in range(docs):
        pdf, pages = readable[i % len(readable)]
        target = root / f"{i:04d}__{pdf.name}"
        shutil.copyfile(pdf, target)
        paths.append(target)
        counts[str(target)] = pages
    return Corpus(root, tuple(paths), counts, tuple(skipped))
