"""Settings of PDF parsing (pydantic-settings, ``INGEST_RAY_PARSE_*``).

Which parser runs (``mode``) and the limits that keep a hostile or broken PDF from taking a
worker down: a wall-clock budget and an address-space cap for the sandboxed child process, and a
page cap. A document with more than ``max_pages`` pages is *refused* with
:class:`~ingest_ray.parsing.errors.TooManyPagesError` rather than silently truncated: a partial
document indexed as if it were whole is worse than a clear failure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ParseMode = Literal["auto", "api", "inprocess", "cpu"]
MineruApiStyle = Literal["tasks", "file_parse"]


def _alias(name: str) -> AliasChoices:
    """Read ``name`` from ``INGEST_RAY_PARSE_<NAME>`` (env) or ``name`` (constructor)."""
    return AliasChoices(f"INGEST_RAY_PARSE_{name.upper()}", name)


class ParseSettings(BaseSettings):
    """How the ``mineru`` stage turns a PDF into MinerU's content list."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_RAY_", extra="ignore", frozen=True, populate_by_name=True
    )

    #: ``auto``: the MinerU HTTP API when ``mineru_url`` is set, else MinerU in-process when the
    #: ``mineru`` package is importable, else the CPU parser. The other values force one parser.
    mode: ParseMode = Field(default="auto", validation_alias=_alias("mode"))
    #: Base URL of a ``mineru-api`` server (MinerU 2.x/3.x ``/tasks`` and ``/file_parse`` API).
    mineru_url: AnyHttpUrl | None = Field(default=None, validation_alias=_alias("mineru_url"))
    #: ``tasks`` (submit, poll, fetch the result) or the synchronous ``file_parse`` endpoint.
    mineru_api_style: MineruApiStyle = Field(
        default="tasks", validation_alias=_alias("mineru_api_style")
    )
    #: MinerU backend: ``pipeline``, ``vlm-auto-engine``, ``hybrid-auto-engine``, ...
    mineru_backend: str = Field(
        default="pipeline", min_length=1, validation_alias=_alias("mineru_backend")
    )
    #: MinerU parse method (pipeline/hybrid backends): ``auto``, ``txt`` or ``ocr``.
    mineru_parse_method: str = Field(
        default="auto", min_length=1, validation_alias=_alias("mineru_parse_method")
    )
    #: OCR language hint for MinerU (``en``, ``ch``, ``latin``, ...).
    mineru_lang: str = Field(default="en", min_length=1, validation_alias=_alias("mineru_lang"))
    #: How long a submitted MinerU task may take, queueing included, before we give up on it.
    mineru_task_timeout_s: float = Field(
        default=1800.0, gt=0, validation_alias=_alias("mineru_task_timeout_s")
    )
    #: Timeout of one HTTP request to MinerU (``file_parse`` waits for the whole parse).
    mineru_request_timeout_s: float = Field(
        default=60.0, gt=0, validation_alias=_alias("mineru_request_timeout_s")
    )
    #: Pause between two status polls of a MinerU task.
    poll_interval_s: float = Field(default=2.0, gt=0, validation_alias=_alias("poll_interval_s"))
    #: Wall-clock budget of one sandboxed parse (the child is killed when it runs out).
    timeout_s: float = Field(default=120.0, gt=0, validation_alias=_alias("timeout_s"))
    #: Address-space cap of the sandboxed child (``RLIMIT_AS``), in MiB.
    memory_mb: int = Field(default=2048, ge=1, validation_alias=_alias("memory_mb"))
    #: Documents with more pages are refused (``TooManyPagesError``), never truncated.
    max_pages: int = Field(default=500, ge=1, validation_alias=_alias("max_pages"))
