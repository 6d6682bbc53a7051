"""How a document is named to people: its title, else its file name, else its DOI.

The title comes from the metadata stage (OpenAlex for DOIs and OpenAlex ids; a local PDF's own
info dictionary), else from the first heading of the parsed content list (the chunk stage
records it), else from what the request said. Tables, the dashboard and the API show
:func:`document_label`; the ``doc_key`` stays the identity (``--json``, ``-v``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from ingest_ray.ledger.base import Job, JobFilter, Ledger, Page

#: longest title kept (a longer "title" is a paragraph that lost its way)
MAX_TITLE: Final = 300
_FILE_NAME = re.compile(r"\.(docx?|odt|rtf|pdf|tex|dvi|ps|indd|pages|txt)\s*$", re.IGNORECASE)
_TOOL_PREFIX = re.compile(r"^(microsoft (word|powerpoint) - |untitled\b)", re.IGNORECASE)
_PLACEHOLDERS: Final = frozenset({"title", "no title", "untitled", "none", "unknown", "document"})
_SPACES = re.compile(r"\s+")


def clean_title(value: object) -> str | None:
    """``value`` as a title, or ``None`` when it is not one a person would recognise: empty,
    a file name, a tool's placeholder ("Microsoft Word - x.docx", "untitled") or mostly digits
    (some producers put a job number there)."""
    if not isinstance(value, str):
        return None
    text = _SPACES.sub(" ", value.replace("\0", "")).strip()
    if not 3 <= len(text) <= MAX_TITLE or text.lower() in _PLACEHOLDERS:
        return None
    if _FILE_NAME.search(text) or _TOOL_PREFIX.match(text):
        return None
    letters = sum(ch.isalpha() for ch in text)
    if letters < 3 or letters < 0.5 * len(text.replace(" ", "")):
        return None
    return text


def first_heading(items: Iterable[Mapping[str, Any]]) -> str | None:
    """The first usable heading of a MinerU content list (blocks with a ``text_level``),
    preferring the top level when it comes within the first blocks."""
    best: tuple[int, str] | None = None
    for n, item in enumerate(items):
        level = item.get("text_level")
        if not isinstance(level, int) or isinstance(level, bool) or level < 1:
            continue
        title = clean_title(item.get("text"))
        if title is None:
            continue
        if level == 1:
            return title
        best = best or (level, title)
        if n > 50:
            break
    return best[1] if best else None


def pdf_info_title(path: str | Path) -> str | None:
    """The ``/Title`` of a PDF's info dictionary, when it is a usable title. Unreadable or
    encrypted files give ``None`` (the parser reports what is wrong with them)."""
    import pypdfium2  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415

    from ingest_ray.pdf_lock import PDFIUM_LOCK  # noqa: PLC0415

    with PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(str(path))
        except (pypdfium2.PdfiumError, OSError, ValueError):
            return None
        try:
            title: str | None = clean_title(document.get_metadata_dict().get("Title"))
            return title
        except (pypdfium2.PdfiumError, ValueError):
            return None
        finally:
            document.close()


def _section(outputs: Mapping[str, Any], stage: str) -> Mapping[str, Any]:
    value = outputs.get(stage)
    return value if isinstance(value, Mapping) else {}


def document_title(job: Job) -> str | None:
    """The job's document title, from the stages' outputs, else from the request."""
    work = _section(job.outputs, "metadata").get("work")
    candidates = [
        work.get("title") if isinstance(work, Mapping) else None,
        _section(job.outputs, "chunk").get("title"),
        _section(job.metadata, "request").get("title"),
    ]
    return next((t for t in map(clean_title, candidates) if t), None)


def file_name(job: Job) -> str | None:
    """The name of the file the document came from (a local PDF, a PDF URL, an upload)."""
    named = _section(job.metadata, "request").get("file_name")
    if isinstance(named, str) and named.strip():
        return named.strip()
    source = _section(job.metadata, "source")
    if source.get("kind") in ("pdf_path", "pdf_url") and isinstance(source.get("value"), str):
        tail = str(source["value"]).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if tail and not job.doc_key.startswith("pdf:sha256:"):
            return tail
    return None


def doi_of(job: Job) -> str | None:
    """The document's DOI, from its metadata or its key."""
    work = _section(job.outputs, "metadata").get("work")
    doi = work.get("doi") if isinstance(work, Mapping) else None
    if isinstance(doi, str) and doi:
        return doi
    return job.doc_key.removeprefix("doi:") if job.doc_key.startswith("doi:") else None


def document_label(job: Job) -> str:
    """Title, else file name, else DOI, else the document key."""
    return document_title(job) or file_name(job) or doi_of(job) or job.doc_key


def find_jobs(
    ledger: Ledger,
    flt: JobFilter,
    text: str,
    *,
    cursor: str | None = None,
    limit: int = 20,
    budget: int = 2000,
) -> Page:
    """Jobs matching ``flt`` whose ``doc_key`` or document name contains ``text`` (any case),
    newest first. At most ``budget`` jobs are looked at per call; when that runs out, the page
    may be short and ``next_cursor`` goes on from the last job looked at."""
    needle = text.casefold()
    items: list[Job] = []
    after, seen = cursor, 0
    while seen < budget:
        page = ledger.list_jobs(flt, cursor=after, limit=min(200, budget - seen))
        for job in page.items:
            seen += 1
            after = job.job_id
            if needle in job.doc_key.casefold() or needle in document_label(job).casefold():
                items.append(job)
                if len(items) > limit:
                    return Page(items=items[:limit], next_cursor=items[limit - 1].job_id)
        if page.next_cursor is None:
            return Page(items=items, next_cursor=None)
    return Page(items=items, next_cursor=after)
