"""The local tenant's key for ``ingest-ray up``: created once, shown again, replaced when Redis
no longer accepts it; the file is readable by its owner only (real Redis)."""

from __future__ import annotations

from pathlib import Path

from ingest_ray.auth import ApiKeyStore
from ingest_ray.config import Settings
from ingest_ray.local_key import local_key
from tests.conftest import Services


def test_local_key_is_created_once_shown_again_and_renewed_when_revoked(
    services: Services, redis_prefix: str, tmp_path: Path
) -> None:
    settings = Settings(redis_url=services.redis_url, redis_prefix=redis_prefix,
                        state_dir=tmp_path)  # fmt: skip
    first = local_key(settings)
    assert first.created and first.tenant == "default"
    assert first.path.stat().st_mode & 0o777 == 0o600
    again = local_key(settings)
    assert (again.created, again.key, again.key_id) == (False, first.key, first.key_id)
    store = ApiKeyStore(settings.redis_url, settings.redis_prefix)
    try:
        principal = store.verify(first.key)
        assert principal is not None and principal.tenant_id == "default"
        assert store.revoke(first.key_id)
    finally:
        store.close()
    renewed = local_key(settings)
    assert renewed.created and renewed.key != first.key
    other = local_key(settings.model_copy(update={"redis_prefix": redis_prefix + "x:"}))
    assert other.path != first.path  # one file per Redis and prefix
