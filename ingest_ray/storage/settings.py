"""Settings of the artifact store (pydantic-settings, ``INGEST_RAY_BLOB_*``).

``blob_url`` picks the backend: a local path or ``file://`` URL (the default, under the state
directory), a path on a shared POSIX mount (every node mounts it at the same place), or
``s3://bucket/prefix`` for S3 and S3-compatible object storage, with credentials from the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``, or the instance's role).
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_path, user_state_path
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest_ray.storage.blobs import DEFAULT_MAX_BYTES

_GB = 1024 * 1024 * 1024


def _default_blob_url() -> str:
    return str(user_state_path("ingest-ray") / "blobs")


def _default_cache_dir() -> Path:
    return user_cache_path("ingest-ray") / "blob-cache"


class StorageSettings(BaseSettings):
    """Where stages keep their artifacts (PDFs, content lists, chunk lists, vectors)."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_RAY_", extra="ignore", frozen=True, populate_by_name=True
    )

    #: a path, ``file:///path`` or ``s3://bucket/prefix`` (``INGEST_RAY_BLOB_DIR``, the older
    #: name of a local path, is read too)
    blob_url: str = Field(
        default_factory=_default_blob_url,
        min_length=1,
        validation_alias=AliasChoices("INGEST_RAY_BLOB_URL", "INGEST_RAY_BLOB_DIR", "blob_url"),
    )
    #: no blob may be larger (a put is refused, a get does not download it)
    blob_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0)
    #: node-local copies of remote blobs for tools that need a file (object storage only)
    blob_cache_dir: Path = Field(default_factory=_default_cache_dir)
    blob_cache_max_bytes: int = Field(default=8 * _GB, gt=0)
    #: extra obstore S3 options, e.g. ``{"region": "eu-west-1"}`` (JSON in the environment);
    #: the AWS_* variables are read anyway
    blob_store_options: dict[str, str] = Field(default_factory=dict)
    #: timeout of one object-storage request, and of its retries together
    blob_timeout_s: float = Field(default=60.0, gt=0)
    blob_max_retries: int = Field(default=3, ge=0, le=20)
