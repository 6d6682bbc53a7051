"""A stage actor's imports leave the drivers it does not use unloaded, and the lazy package
exports behave like the eager ones they replaced."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import ingest_ray.adapters
import ingest_ray.auth
import ingest_ray.ledger
from ingest_ray.ledger.redis import RedisLedger

# what a chunk stage actor imports when Ray unpickles its class and builds its stage
_WORKER_IMPORTS = textwrap.dedent(
    """
    import sys
    import ingest_ray.runtime.pools, ingest_ray.stages.factories, ingest_ray.stages.chunk
    import ingest_ray.config, ingest_ray.control, ingest_ray.tenants, ingest_ray.ledger
    from ingest_ray.adapters.ratelimit import reserved_tokens
    print(" ".join(m for m in ("redis", "psycopg", "jwt") if m in sys.modules))
    """
)


def test_stage_actor_imports_load_no_ledger_driver_and_no_jwt() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WORKER_IMPORTS], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == []


def test_lazy_names_resolve_to_their_modules_and_are_cached() -> None:
    assert ingest_ray.ledger.RedisLedger is RedisLedger
    assert "RedisLedger" in vars(ingest_ray.ledger)  # set on the package after the first read
    from ingest_ray.adapters import OpenAlexClient
    from ingest_ray.adapters.openalex import OpenAlexClient as direct

    assert OpenAlexClient is direct
    assert ingest_ray.auth.JwtVerifier.__module__ == "ingest_ray.auth.tokens"


@pytest.mark.parametrize("package", [ingest_ray.ledger, ingest_ray.adapters, ingest_ray.auth])
def test_every_exported_name_resolves_and_shows_in_dir(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert all(getattr(package, name) is not None for name in names)
    assert set(names) <= set(dir(package))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = ingest_ray.ledger.Nope  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from ingest_ray.adapters import Nope  # type: ignore[attr-defined]  # noqa: F401
