"""S3 connection options shared by the blob store (obstore) and LanceDB (Lance's object store).

Both sit on the Rust ``object_store`` crate, which reads the usual AWS variables by itself
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``, instance and web-identity credentials). What it does not do on its own is
talk plain HTTP to an S3-compatible server (MinIO, Ceph RGW, a test server): an endpoint that
starts with ``http://`` is an explicit choice, so it turns ``allow_http`` on here. The endpoint
is looked up as boto3 does: ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL`` (then the
object_store spelling ``AWS_ENDPOINT``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

#: the spellings object_store accepts for the endpoint option
ENDPOINT_KEYS: Final = ("endpoint", "aws_endpoint", "endpoint_url", "aws_endpoint_url")
_ENDPOINT_ENV: Final = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")


def s3_endpoint(options: Mapping[str, str], environ: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint: from ``options`` when set there, else from the environment."""
    for key in ENDPOINT_KEYS:
        if options.get(key):
            return options[key]
    env = os.environ if environ is None else environ
    return next((env[name] for name in _ENDPOINT_ENV if env.get(name)), None)


def is_plain_http(endpoint: str | None) -> bool:
    """Whether ``endpoint`` is an ``http://`` URL (needs ``allow_http``)."""
    return bool(endpoint) and str(endpoint).lower().startswith("http://")


def lance_storage_options(
    uri: str, options: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``storage_options`` for ``lancedb.connect(uri)``: ``options`` plus the endpoint and
    ``allow_http`` derived from the environment for ``s3://`` URIs (empty for local paths)."""
    if not uri.lower().startswith(("s3://", "s3a://")):
        return dict(options)
    endpoint = s3_endpoint(options, environ)
    derived: dict[str, str] = {}
    if endpoint and not any(options.get(key) for key in ENDPOINT_KEYS):
        derived["aws_endpoint"] = endpoint
    if is_plain_http(endpoint):
        derived["allow_http"] = "true"
    return {**derived, **options}
