"""One place that turns the storage URL into a blob store.

Every component that reads or writes artifacts (the stage factories, the job API's upload)
builds its store here, so all of them agree on where blobs live.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast
from urllib.parse import unquote, urlsplit

from ingest_ray.errors import ConfigurationError
from ingest_ray.storage.blobs import BlobStore, FileBlobStore
from ingest_ray.storage.cache import BlobCache
from ingest_ray.storage.s3 import ENDPOINT_KEYS, is_plain_http, s3_endpoint
from ingest_ray.storage.settings import StorageSettings

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

#: URL schemes of object storage that :func:`open_blob_store` accepts
OBJECT_SCHEMES: Final = frozenset({"s3", "s3a"})


def local_root(url: str) -> Path | None:
    """The directory a local URL names (a path or ``file://``), ``None`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"file:// URL with a host is not supported: {url!r}")
        return Path(unquote(parts.path))
    if parts.scheme == "":
        return Path(url).expanduser()
    return None


def open_blob_store(settings: StorageSettings | None = None) -> BlobStore:
    """The blob store ``settings.blob_url`` names. Nothing connects until its first call."""
    settings = settings or StorageSettings()
    url = settings.blob_url.strip()
    root = local_root(url)
    if root is not None:
        return FileBlobStore(root, max_bytes=settings.blob_max_bytes)
    scheme = urlsplit(url).scheme.lower()
    if scheme in OBJECT_SCHEMES:
        return _s3_store(url, settings)
    raise ConfigurationError(
        f"unsupported blob_url {url!r}: use a path, file:///path or s3://bucket/prefix"
    )


def _s3_store(url: str, settings: StorageSettings) -> BlobStore:
    from obstore.store import S3Store  # noqa: PLC0415 - only object-storage users need it

    from ingest_ray.storage.objects import ObjectBlobStore  # noqa: PLC0415

    parts = urlsplit(url)
    if not parts.netloc:
        raise ConfigurationError(f"blob_url {url!r} names no bucket")
    options = settings.blob_store_options
    endpoint = s3_endpoint(options)
    timeout = timedelta(seconds=settings.blob_timeout_s)
    client: ClientConfig = {"timeout": timeout, "connect_timeout": timeout}
    if is_plain_http(endpoint):
        client["allow_http"] = True
    retry: RetryConfig = {"max_retries": settings.blob_max_retries, "retry_timeout": timeout}
    # the options are the user's own S3Config keys; obstore rejects unknown ones
    config = cast("S3Config", dict(options))
    if endpoint and not any(options.get(key) for key in ENDPOINT_KEYS):
        config["endpoint"] = endpoint
    try:
        store = S3Store.from_url(
            f"s3://{parts.netloc}{parts.path}",
            config=config,
            client_options=client,
            retry_config=retry,
        )
    except Exception as exc:  # obstore raises ValueError/its own errors for bad options
        raise ConfigurationError(f"cannot configure blob store {url!r}: {exc}") from exc
    cache = BlobCache(settings.blob_cache_dir, max_bytes=settings.blob_cache_max_bytes)
    return ObjectBlobStore(store, url=url, cache=cache, max_bytes=settings.blob_max_bytes)
