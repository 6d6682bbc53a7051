"""Fixtures for the fetcher tests: settings, a blob store, a fake DNS and a policing backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest_ray.fetch import FetchSettings
from ingest_ray.storage import FileBlobStore
from tests.conftest import FIXTURES
from tests.unit.fetch.support import FakeResolver, TripwireBackend

PDFS = FIXTURES / "pdfs"


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    """A real one-page PDF, read from the shared fixtures at test time."""
    return (PDFS / "sample-trivial-pdflatex-1page.pdf").read_bytes()


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def strict_settings(tmp_path: Path) -> FetchSettings:
    """Production posture: loopback refused."""
    return FetchSettings(total_timeout_s=10)


@pytest.fixture
def loopback_settings(tmp_path: Path) -> FetchSettings:
    """Test posture: loopback (127.0.0.0/8, ::1) allowed so a local server can be reached."""
    return FetchSettings(total_timeout_s=10, allow_loopback=True)


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver(
        {
            "localhost": [["127.0.0.1", "::1"]],
            "pdfs.test": [["127.0.0.1"]],
            "metadata.test": [["169.254.169.254"]],
            "intranet.test": [["10.0.0.1"]],
            "mapped.test": [["::ffff:127.0.0.1"]],
            "mixed.test": [["93.184.216.34", "192.168.0.10"]],
            "linklocal6.test": [["fe80::1%eth0"]],
            "ula.test": [["fd00::5"]],
            "public.test": [["93.184.216.34"]],
        }
    )


@pytest.fixture
def tripwire() -> TripwireBackend:
    return TripwireBackend()
