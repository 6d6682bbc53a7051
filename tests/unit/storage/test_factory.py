"""The storage URL picks the backend; every component builds its store through one factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest_ray.config import Settings
from ingest_ray.errors import ConfigurationError
from ingest_ray.index.errors import ArtifactMissingError as IndexArtifactMissing
from ingest_ray.stages.factories import blob_store
from ingest_ray.storage import ArtifactMissingError, FileBlobStore, StorageSettings, open_blob_store
from ingest_ray.storage.objects import ObjectBlobStore
from ingest_ray.storage.s3 import lance_storage_options, s3_endpoint
from ingest_ray.text.errors import ArtifactMissingError as TextArtifactMissing


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("/srv/blobs", "/srv/blobs"),
        ("file:///mnt/shared/blobs", "/mnt/shared/blobs"),
        ("file://localhost/mnt/x%20y", "/mnt/x y"),
        ("relative/blobs", "relative/blobs"),
    ],
)
def test_open_blob_store_local_urls_give_the_directory_store(url: str, root: str) -> None:
    store = open_blob_store(StorageSettings(blob_url=url, blob_max_bytes=123))
    assert isinstance(store, FileBlobStore) and store.root == Path(root)
    assert store.max_bytes == 123


def test_open_blob_store_default_is_the_state_directory() -> None:
    store = open_blob_store(StorageSettings())
    assert isinstance(store, FileBlobStore) and store.root.parts[-2:] == ("ingest-ray", "blobs")


def test_open_blob_store_s3_url_gives_the_object_store_without_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens there
    settings = StorageSettings(blob_url="s3://bucket/some/prefix", blob_cache_dir=tmp_path)
    store = open_blob_store(settings)
    assert isinstance(store, ObjectBlobStore) and store.url == "s3://bucket/some/prefix"
    assert store.cache.root == tmp_path


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "gs://bucket/x", "s3://", "file://otherhost/x", "memory:///"]
)
def test_open_blob_store_refuses_unsupported_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_blob_store(StorageSettings(blob_url=url))


def test_storage_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_BLOB_DIR", "/old/name")
    assert StorageSettings().blob_url == "/old/name"
    monkeypatch.setenv("INGEST_RAY_BLOB_URL", "s3://b/p")
    monkeypatch.setenv("INGEST_RAY_BLOB_STORE_OPTIONS", '{"region": "eu-west-1"}')
    settings = StorageSettings()
    assert settings.blob_url == "s3://b/p" and settings.blob_store_options == {
        "region": "eu-west-1"
    }


def test_stage_factory_blob_store_reads_the_storage_section(tmp_path: Path) -> None:
    store = blob_store(Settings(sections={"storage": {"blob_url": str(tmp_path / "b")}}))
    assert isinstance(store, FileBlobStore) and store.root == tmp_path / "b"


def test_stage_factory_refuses_the_old_fetch_blob_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="blob_url"):
        blob_store(Settings(sections={"fetch": {"blob_dir": str(tmp_path)}}))


def test_artifact_missing_error_is_defined_once() -> None:
    assert TextArtifactMissing is ArtifactMissingError is IndexArtifactMissing


def test_s3_endpoint_prefers_options_then_the_boto3_variables() -> None:
    env = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3only:2"}
    assert s3_endpoint({}, env) == "http://s3only:2"
    assert s3_endpoint({"endpoint": "https://mine"}, env) == "https://mine"
    assert s3_endpoint({}, {"AWS_ENDPOINT": "http://old:3"}) == "http://old:3"
    assert s3_endpoint({}, {}) is None


def test_lance_storage_options_allow_http_only_for_http_endpoints() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
    assert lance_storage_options("s3://b/index", {}, env) == {
        "aws_endpoint": "http://127.0.0.1:9000",
        "allow_http": "true",
    }
    assert lance_storage_options("s3://b/i", {}, {"AWS_ENDPOINT_URL": "https://x"}) == {
        "aws_endpoint": "https://x"
    }
    assert lance_storage_options("/local/index", {"a": "b"}, env) == {"a": "b"}
    assert lance_storage_options("s3://b/i", {"allow_http": "false"}, env)["allow_http"] == "false"
