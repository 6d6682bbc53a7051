"""Settings of the safe PDF fetcher (pydantic-settings, ``INGEST_RAY_FETCH_*``).

Limits that keep a hostile or broken server from wasting our time or memory: a byte cap, a
wall-clock budget for the whole fetch (redirects included) and a redirect cap.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The only schemes a fetch may ever use; settings can narrow this (e.g. https only), never widen.
SUPPORTED_SCHEMES: frozenset[str] = frozenset({"http", "https"})

_MB = 1024 * 1024


def _alias(name: str) -> AliasChoices:
    """Read ``name`` from ``INGEST_RAY_FETCH_<NAME>`` (env) or ``name`` (constructor)."""
    return AliasChoices(f"INGEST_RAY_FETCH_{name.upper()}", name)


class FetchSettings(BaseSettings):
    """How PDFs are fetched from URLs that come from outside (publishers, OA repositories)."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_RAY_", extra="ignore", frozen=True, populate_by_name=True
    )

    max_bytes: int = Field(default=50 * _MB, gt=0, validation_alias=_alias("max_bytes"))
    total_timeout_s: float = Field(default=60.0, gt=0, validation_alias=_alias("total_timeout_s"))
    connect_timeout_s: float = Field(
        default=10.0, gt=0, validation_alias=_alias("connect_timeout_s")
    )
    read_timeout_s: float = Field(default=30.0, gt=0, validation_alias=_alias("read_timeout_s"))
    max_redirects: int = Field(default=5, ge=0, le=20, validation_alias=_alias("max_redirects"))
    user_agent: str = Field(
        default="ingest-ray/0.1 (scholarly PDF fetcher)",
        min_length=1,
        validation_alias=_alias("user_agent"),
    )
    #: FOR TESTS ONLY: also allow 127.0.0.0/8 and ::1 so a local test server can be fetched.
    #: Never enable it in a deployment: it opens the fetcher to everything listening on loopback.
    allow_loopback: bool = Field(default=False, validation_alias=_alias("allow_loopback"))
    #: Resolve no host names at all (every name counts as unknown, nothing is fetched from the
    #: network): for offline runs such as ``ingest-ray ingest --replay`` and for tests.
    offline: bool = Field(default=False, validation_alias=_alias("offline"))
    #: Schemes a URL (and every redirect hop) may use; a subset of http/https.
    allowed_schemes: frozenset[str] = Field(
        default=SUPPORTED_SCHEMES, validation_alias=_alias("allowed_schemes")
    )
    #: CA bundle for certificate verification; ``None`` uses certifi's Mozilla bundle.
    ca_bundle: Path | None = Field(default=None, validation_alias=_alias("ca_bundle"))
    #: Directories local PDFs (``pdf_path`` sources) must live under; empty means anywhere.
    local_roots: tuple[Path, ...] = Field(default=(), validation_alias=_alias("local_roots"))
    #: Probe every stored PDF (page count; encrypted, damaged or too long) in the sandboxed
    #: prober here, on the CPU pool, so the parser skips its own probe and an unusable PDF
    #: fails before it takes an accelerator. ``None``: when the parser runs on an accelerator
    #: or is MinerU (see ``stages.factories.probes_ahead``); the CPU parser counts pages as
    #: it parses, so a probe ahead of it would only cost a child.
    probe_pdfs: bool | None = Field(default=None, validation_alias=_alias("probe_pdfs"))

    @field_validator("allowed_schemes")
    @classmethod
    def _only_http(cls, value: frozenset[str]) -> frozenset[str]:
        schemes = frozenset(s.lower() for s in value)
        if not schemes or not schemes <= SUPPORTED_SCHEMES:
            raise ValueError("allowed_schemes must be a non-empty subset of {http, https}")
        return schemes
