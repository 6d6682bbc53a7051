"""What a MinerU client sends and gets back per file, the same for every API generation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from ingest_ray.parsing.content import ContentItem
from ingest_ray.parsing.errors import ParseError


@dataclass(frozen=True, slots=True)
class Upload:
    """One file of a request: the name MinerU sees (its suffix decides the parser, so it ends
    in ``.pdf``) and where its bytes are."""

    name: str
    path: Path
    pages: int = 0


#: per file, in upload order: its content list (``page_idx`` as in the uploaded file), or the
#: error that failed just this file
FileOutcome: TypeAlias = list[ContentItem] | ParseError


def upload_name(index: int) -> str:
    """A name MinerU keeps as it is (2.x/3.x key results by the file's stem)."""
    return f"f{index:03d}.pdf"
