"""Errors of the artifact store, under the engine's retryable/permanent tree.

A blob that is missing, too big or corrupt stays so however often a stage retries: permanent. A
store that does not answer (object storage away, a network blip) may answer later: retryable.
"""

from __future__ import annotations

from ingest_ray.errors import PermanentError, RetryableError


class ArtifactMissingError(PermanentError, KeyError):
    """An artifact an earlier stage should have stored is not there: the job's outputs name no
    blob, or the store does not hold the blob they name.

    Also a ``KeyError``, the store protocol's original "absent" signal, so code that catches
    ``KeyError`` around :meth:`~ingest_ray.storage.blobs.BlobStore.get` keeps working.
    """

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as every other IngestError does
        return self.message


class BlobTooLargeError(PermanentError):
    """A blob is larger than the store's size cap (``INGEST_RAY_BLOB_MAX_BYTES``)."""


class BlobCorruptError(PermanentError):
    """The bytes stored under a digest do not hash to that digest."""


class BlobStoreUnavailableError(RetryableError):
    """The store did not answer or refused the request (object storage away, a network error)."""
