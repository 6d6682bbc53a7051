"""Hostile URLs are refused before any connection: each case runs a real ``fetch_pdf`` with a
backend that records (and fails the test on) every non-loopback connection attempt, and asserts
that no connection was attempted at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingest_ray.fetch import FetchRefusedError, FetchSettings, SafeFetcher
from ingest_ray.storage import FileBlobStore
from tests.unit.fetch.support import FakeResolver, TripwireBackend

HOSTILE_URLS = [
    # loopback, in every spelling
    "http://127.0.0.1/",
    "http://127.0.0.1:6379/",
    "http://127.255.255.254:9092/",
    "http://localhost/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.1/",
    "http://127.0.0.1./",
    "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/",
    # IPv6 forms
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[0:0:0:0:0:ffff:7f00:1]/",
    "http://[::ffff:7f00:1]:8080/",
    "http://[::127.0.0.1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[::]/",
    "http://[ff02::1]/",
    "http://[fec0::1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::1]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
    # special-purpose IPv4
    "http://0.0.0.0/",
    "http://0/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://10.0.0.1/",
    "http://198.18.0.1/",
    # names that resolve somewhere forbidden (fake DNS)
    "http://metadata.test/computeMetadata/v1/",
    "http://intranet.test/",
    "http://mapped.test/",
    "http://mixed.test/",
    "http://linklocal6.test/",
    "https://ula.test/",
    # credentials, and parser confusion
    "http://user@127.0.0.1/",
    "http://example.com@127.0.0.1/",
    "http://user:pass@public.test/paper.pdf",
    "http://public.test\\@127.0.0.1/",
    "http://127.0.0.1\\@public.test/",
    "http://%31%32%37.0.0.1/",
    "http://127.0.0.1\t/",
    "http://public.test\n.127.0.0.1/",
    "http://256.0.0.1/",
    "http://0x7f.0.0.1.5/",
    # schemes other than http(s)
    "file:///etc/passwd",
    "file://localhost/etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "data:application/pdf;base64,JVBERi0xLjQK",
    "ftp://public.test/paper.pdf",
    "javascript:alert(1)",
    "dict://127.0.0.1:11211/stats",
    "ldap://127.0.0.1/",
    "//127.0.0.1/paper.pdf",
    "http:///etc/passwd",
    "http:/127.0.0.1/",
    "",
]


def test_hostile_url_list_is_long_enough() -> None:
    assert len(set(HOSTILE_URLS)) >= 40


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_fetch_pdf_refuses_hostile_url_without_connecting(
    url: str,
    strict_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
    tmp_path: Path,
) -> None:
    fetcher = SafeFetcher(strict_settings, blobs, resolver=resolver, network_backend=tripwire)
    with pytest.raises(FetchRefusedError):
        asyncio.run(fetcher.fetch_pdf(url))
    assert tripwire.connects == []
    assert not (tmp_path / "blobs").exists()
