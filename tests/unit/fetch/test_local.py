"""store_local_pdf: local files are checked (regular file, size, magic, roots) and stored;
adopt_blob: an uploaded PDF already in the store gets the same checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ingest_ray.fetch import (
    FetchNotFoundError,
    FetchRefusedError,
    FetchSettings,
    NotAPdfError,
    PdfTooLargeError,
    SafeFetcher,
)
from ingest_ray.storage import ArtifactMissingError, FileBlobStore
from tests.unit.fetch.conftest import PDFS


def test_store_local_pdf_stores_a_fixture_pdf(
    strict_settings: FetchSettings, blobs: FileBlobStore
) -> None:
    path = PDFS / "sample-pdflatex-4pages.pdf"
    data = path.read_bytes()
    fetched = SafeFetcher(strict_settings, blobs).store_local_pdf(path)
    assert fetched.sha256 == hashlib.sha256(data).hexdigest()
    assert (fetched.size, fetched.final_url, fetched.content_type) == (len(data), None, None)
    assert blobs.get(fetched.sha256) == data


def test_store_local_pdf_twice_keeps_one_blob(
    strict_settings: FetchSettings, blobs: FileBlobStore
) -> None:
    fetcher = SafeFetcher(strict_settings, blobs)
    first = fetcher.store_local_pdf(PDFS / "sample-trivial-pdflatex-1page.pdf")
    second = fetcher.store_local_pdf(PDFS / "sample-trivial-pdflatex-1page.pdf")
    assert first == second
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == [blobs.path(first.sha256)]


def test_store_local_pdf_refuses_html(
    strict_settings: FetchSettings, blobs: FileBlobStore, tmp_path: Path
) -> None:
    page = tmp_path / "paper.pdf"
    page.write_bytes(b"<html><body>Please log in</body></html>")
    with pytest.raises(NotAPdfError):
        SafeFetcher(strict_settings, blobs).store_local_pdf(page)
    assert not blobs.root.exists()


def test_store_local_pdf_refuses_a_file_over_the_cap(blobs: FileBlobStore, tmp_path: Path) -> None:
    settings = FetchSettings(max_bytes=10_000)
    with pytest.raises(PdfTooLargeError):
        SafeFetcher(settings, blobs).store_local_pdf(PDFS / "sample-trivial-pdflatex-1page.pdf")


def test_store_local_pdf_maps_missing_file_to_not_found(
    strict_settings: FetchSettings, blobs: FileBlobStore, tmp_path: Path
) -> None:
    with pytest.raises(FetchNotFoundError):
        SafeFetcher(strict_settings, blobs).store_local_pdf(tmp_path / "nope.pdf")


def test_store_local_pdf_refuses_what_is_not_a_regular_file(
    strict_settings: FetchSettings, blobs: FileBlobStore, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    fetcher = SafeFetcher(strict_settings, blobs)
    with pytest.raises(FetchRefusedError, match="not a regular file"):
        fetcher.store_local_pdf(fifo)  # must not block waiting for a writer
    with pytest.raises(FetchRefusedError, match="not a regular file"):
        fetcher.store_local_pdf(tmp_path)


def test_store_local_pdf_confines_paths_to_local_roots(
    blobs: FileBlobStore, tmp_path: Path
) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    inside = root / "ok.pdf"
    inside.write_bytes((PDFS / "sample-trivial-pdflatex-1page.pdf").read_bytes())
    escape = root / "escape.pdf"
    escape.symlink_to(PDFS / "sample-pdflatex-4pages.pdf")
    fetcher = SafeFetcher(FetchSettings(local_roots=(root,)), blobs)
    assert fetcher.store_local_pdf(inside).size == inside.stat().st_size
    with pytest.raises(FetchRefusedError, match="outside the allowed local roots"):
        fetcher.store_local_pdf(escape)
    with pytest.raises(FetchRefusedError, match="outside the allowed local roots"):
        fetcher.store_local_pdf(root / ".." / ".." / "etc" / "passwd")


def test_adopt_blob_checks_an_uploaded_pdf_and_keeps_its_digest(
    strict_settings: FetchSettings, blobs: FileBlobStore
) -> None:
    data = (PDFS / "sample-trivial-pdflatex-1page.pdf").read_bytes()
    digest = blobs.put(data)
    fetched = SafeFetcher(strict_settings, blobs).adopt_blob(digest)
    assert (fetched.sha256, fetched.size, fetched.final_url) == (digest, len(data), None)


def test_adopt_blob_refuses_missing_non_pdf_oversized_and_malformed_refs(
    blobs: FileBlobStore,
) -> None:
    fetcher = SafeFetcher(FetchSettings(max_bytes=1000), blobs)
    html, big = blobs.put(b"<html>log in</html>"), blobs.put(b"%PDF-" + b"0" * 2000)
    with pytest.raises(ArtifactMissingError):
        fetcher.adopt_blob("0" * 64)
    with pytest.raises(NotAPdfError):
        fetcher.adopt_blob(html)
    with pytest.raises(PdfTooLargeError):
        fetcher.adopt_blob(big)
    with pytest.raises(FetchRefusedError):
        fetcher.adopt_blob("../../etc/passwd")
