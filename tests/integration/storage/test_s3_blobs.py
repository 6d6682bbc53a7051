"""The S3 blob store against a real S3-compatible HTTP server on loopback (moto's server mode):
the store contract, another process reading what this one wrote (and the reverse), uploads cut
half way leaving nothing behind, and stages in a Ray actor reading and writing the same store."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import obstore
import pytest

from ingest_ray.storage import (
    BlobStore,
    BlobStoreUnavailableError,
    StorageSettings,
    open_blob_store,
)
from ingest_ray.storage.blobs import blob_key
from ingest_ray.storage.objects import ObjectBlobStore
from tests.integration.storage.faultproxy import CuttingProxy
from tests.s3server import S3Server, client_env
from tests.unit.storage.contract import CHECKS, StoreFactory

CHILD = Path(__file__).with_name("blob_child.py")
ROOT = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024


def _s3(url: str, tmp: Path, **overrides: object) -> ObjectBlobStore:
    settings = StorageSettings(blob_url=url, blob_cache_dir=tmp / "cache", **overrides)  # type: ignore[arg-type]
    store = open_blob_store(settings)
    assert isinstance(store, ObjectBlobStore)
    return store


@pytest.fixture
def s3_url(s3_env: S3Server) -> str:
    return f"s3://{s3_env.new_bucket()}/blobs"


def _child(server: S3Server, url: str, tmp: Path, *args: str) -> object:
    env = client_env(
        server, INGEST_RAY_BLOB_URL=url, INGEST_RAY_BLOB_CACHE_DIR=str(tmp / "child-cache")
    )
    done = subprocess.run(
        [sys.executable, str(CHILD), *args],
        env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_s3_blob_store_contract(s3_url: str, tmp_path: Path, check: object) -> None:
    def make(cap: int) -> BlobStore:
        return _s3(s3_url, tmp_path / str(cap), blob_max_bytes=cap)

    factory: StoreFactory = make
    check(factory)  # type: ignore[operator]


def test_s3_blob_written_here_is_read_by_another_process(
    s3_env: S3Server, s3_url: str, tmp_path: Path
) -> None:
    store = _s3(s3_url, tmp_path)
    small = b"%PDF-1.4 a small one"
    large = bytes(range(256)) * (12 * MIB // 256)  # over 5 MiB: a multipart upload
    digests = [store.put(small), store.put(large)]
    seen = _child(s3_env, s3_url, tmp_path, "read", *digests)
    assert isinstance(seen, dict)
    for digest in digests:
        assert seen[digest]["get"] == seen[digest]["path"] == digest
        assert Path(seen[digest]["where"]).is_relative_to(tmp_path / "child-cache")
    missing = _child(s3_env, s3_url, tmp_path, "missing", hashlib.sha256(b"none").hexdigest())
    assert missing == {"type": "ArtifactMissingError", "key_error": True, "retryable": False}


def test_s3_blob_written_by_another_process_is_read_here(
    s3_env: S3Server, s3_url: str, tmp_path: Path
) -> None:
    digests = _child(s3_env, s3_url, tmp_path, "write", "first text", "second text")
    store = _s3(s3_url, tmp_path)
    assert isinstance(digests, list)
    assert [store.get(d) for d in digests] == [b"first text", b"second text"]
    assert store.path(digests[0]).read_bytes() == b"first text"


@pytest.mark.parametrize("size", [2 * MIB, 12 * MIB], ids=["single-put", "multipart"])
def test_s3_upload_cut_half_way_leaves_no_blob(
    s3_env: S3Server, s3_url: str, tmp_path: Path, size: int
) -> None:
    endpoint = urlsplit(s3_env.endpoint)
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32)
    digest = hashlib.sha256(data).hexdigest()
    with CuttingProxy((endpoint.hostname or "", endpoint.port or 0), cut_after=MIB) as proxy:
        broken = _s3(
            s3_url, tmp_path, blob_store_options={"endpoint": proxy.url},
            blob_max_retries=1, blob_timeout_s=20,
        )  # fmt: skip
        with pytest.raises(BlobStoreUnavailableError):
            broken.put(data)
        assert proxy.cuts >= 1
    direct = _s3(s3_url, tmp_path)
    assert not direct.exists(digest)
    assert [m["path"] for batch in obstore.list(direct.store) for m in batch] == []
    assert direct.put(data) == digest and direct.get(digest) == data  # a retry then works
    assert obstore.head(direct.store, blob_key(digest))["size"] == size


@pytest.mark.usefixtures("local_ray")
def test_s3_stages_in_a_ray_actor_share_the_store_with_this_process(
    s3_env: S3Server, s3_url: str, tmp_path: Path
) -> None:
    import ray

    from ingest_ray.config import Settings
    from ingest_ray.events import DocumentSource, SourceKind
    from ingest_ray.stages import factories
    from ingest_ray.stages.base import StageInput
    from ingest_ray.text.artifacts import load_chunks
    from tests.conftest import FIXTURES

    pdf = (FIXTURES / "pdfs" / "sample-pdflatex-4pages.pdf").read_bytes()
    upload = _s3(s3_url, tmp_path).put(pdf)  # as the job API stores an upload
    settings = Settings(sections={
        "storage": {"blob_url": s3_url, "blob_cache_dir": str(tmp_path / "actor-cache")},
        "parse": {"mode": "cpu"}, "fetch": {"offline": True},
    })  # fmt: skip

    @ray.remote(num_cpus=0.1, runtime_env={"env_vars": s3_env.env()})
    def run_stages(settings: Settings, digest: str) -> dict[str, dict[str, object]]:
        import asyncio

        source = DocumentSource(kind=SourceKind.PDF_BLOB, value=digest)
        outputs: dict[str, dict[str, object]] = {}

        async def pipeline() -> None:
            for name in ("pdf_fetch", "mineru", "chunk"):
                stage = getattr(factories, name)(settings)
                item = StageInput(
                    job_id="j1", tenant_id="t", doc_key=f"pdf:sha256:{digest}",
                    pipeline="two_phase", stage=name, attempt=1, source=source,
                    outputs=outputs,
                )  # fmt: skip
                try:
                    outputs[name] = (await stage.run(item)).data
                finally:
                    await stage.aclose()

        asyncio.run(pipeline())
        return outputs

    outputs = ray.get(run_stages.remote(settings, upload), timeout=240)
    assert outputs["pdf_fetch"]["pdf_sha256"] == upload
    assert (tmp_path / "actor-cache" / blob_key(upload)).is_file()  # the parser had a local copy
    here = _s3(s3_url, tmp_path)
    content = here.get_json(str(outputs["mineru"]["content_sha256"]))
    chunks = load_chunks(here, str(outputs["chunk"]["chunks_sha256"]))
    assert len(content) == outputs["mineru"]["items"] and outputs["mineru"]["pages"] == 4
    assert chunks and all(chunk.text for chunk in chunks)
