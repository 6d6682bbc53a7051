"""Settings of PDF parsing (pydantic-settings, ``INGEST_RAY_PARSE_*``).

Which parser runs (``mode``), where MinerU runs and how it is fed, and the limits that keep a
hostile or broken PDF from taking a worker down: a wall-clock budget and an address-space cap for
the sandboxed child process, and a page cap. A document with more than ``max_pages`` pages is
*refused* with :class:`~ingest_ray.parsing.errors.TooManyPagesError` rather than silently
truncated: a partial document indexed as if it were whole is worse than a clear failure.

MinerU itself can run three ways (see ``docs/mineru.md``): HTTP servers outside Ray
(``mineru_urls``), in-process in GPU actors (``mode="inprocess"``), and either of them with the
VLM served by vLLM behind an OpenAI-compatible URL (``mineru_vlm_url``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, AnyHttpUrl, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ParseMode = Literal["auto", "api", "inprocess", "cpu"]
#: ``v1``: MinerU 4.x ``/v1/tasks``; ``tasks``: MinerU 2.x/3.x ``/tasks``; ``file_parse``: the
#: synchronous 2.x/3.x ``/file_parse``; ``auto``: read from the server's OpenAPI document.
MineruApiStyle = Literal["auto", "v1", "tasks", "file_parse"]
MineruTier = Literal["flash", "basic", "standard", "advanced"]
OcrMode = Literal["auto", "txt", "ocr"]

#: MinerU 4.x refuses a task with more files (``mineru.parser.task_api.MAX_TASK_FILES``).
MINERU_MAX_TASK_FILES = 100


def _alias(name: str) -> AliasChoices:
    """Read ``name`` from ``INGEST_RAY_PARSE_<NAME>`` (env) or ``name`` (constructor)."""
    return AliasChoices(f"INGEST_RAY_PARSE_{name.upper()}", name)


def _url_list(value: Any) -> Any:
    """``"http://a:8000, http://b:8000"`` (an environment variable) or a list of URLs."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ParseSettings(BaseSettings):
    """How the ``mineru`` stage turns a PDF into MinerU's content list."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_RAY_", extra="ignore", frozen=True, populate_by_name=True
    )

    #: ``auto``: the MinerU HTTP API when a server URL is set, else MinerU in-process when the
    #: ``mineru`` package *and* its model runtime (torch) are importable or a VLM URL is set,
    #: else the CPU parser. The other values force one parser.
    mode: ParseMode = Field(default="auto", validation_alias=_alias("mode"))
    #: One MinerU server (kept for compatibility; ``mineru_urls`` takes a list).
    mineru_url: AnyHttpUrl | None = Field(default=None, validation_alias=_alias("mineru_url"))
    #: MinerU servers outside Ray (comma-separated in the environment); work goes to the least
    #: loaded healthy one.
    mineru_urls: Annotated[list[AnyHttpUrl], NoDecode, BeforeValidator(_url_list)] = Field(
        default_factory=list, validation_alias=_alias("mineru_urls")
    )
    #: Which API generation to speak; ``auto`` reads the server's ``/openapi.json``.
    mineru_api_style: MineruApiStyle = Field(
        default="auto", validation_alias=_alias("mineru_api_style")
    )
    #: MinerU 4.x quality tier (``/v1`` and in-process); ``None``: the server's default
    #: (in-process: ``standard``).
    mineru_tier: MineruTier | None = Field(default=None, validation_alias=_alias("mineru_tier"))
    #: MinerU 2.x/3.x backend: ``pipeline``, ``vlm-auto-engine``, ``hybrid-auto-engine``, ...
    #: (``vlm-http-client`` is chosen for you when ``mineru_vlm_url`` is set).
    mineru_backend: str = Field(
        default="pipeline", min_length=1, validation_alias=_alias("mineru_backend")
    )
    #: Text layer or OCR: 2.x/3.x ``parse_method``, 4.x ``ocr_mode``.
    mineru_parse_method: OcrMode = Field(
        default="auto", validation_alias=_alias("mineru_parse_method")
    )
    #: OCR language hint for MinerU 2.x/3.x (``en``, ``ch``, ``latin``, ...).
    mineru_lang: str = Field(default="en", min_length=1, validation_alias=_alias("mineru_lang"))
    #: OpenAI-compatible server (``vllm serve``) of MinerU's VLM: MinerU's ``vlm-http-client``.
    mineru_vlm_url: AnyHttpUrl | None = Field(
        default=None, validation_alias=_alias("mineru_vlm_url")
    )
    #: Model name on that server (empty: MinerU asks the server).
    mineru_vlm_model: str = Field(default="", validation_alias=_alias("mineru_vlm_model"))
    #: Bearer key of that server.
    mineru_vlm_api_key: SecretStr | None = Field(
        default=None, validation_alias=_alias("mineru_vlm_api_key")
    )
    #: ``k``: requests in flight per MinerU server (per actor), so a GPU never waits for the
    #: next document; in-process, concurrent parse calls per actor.
    mineru_in_flight: int = Field(
        default=2, ge=1, le=64, validation_alias=_alias("mineru_in_flight")
    )
    #: Page budget of one request: small documents are sent together up to this many pages
    #: (``0``: one document per request).
    mineru_batch_pages: int = Field(default=64, ge=0, validation_alias=_alias("mineru_batch_pages"))
    #: Files per request at most (MinerU 4.x accepts up to 100 per task).
    mineru_batch_files: int = Field(
        default=16, ge=1, le=MINERU_MAX_TASK_FILES, validation_alias=_alias("mineru_batch_files")
    )
    #: PDFs with more pages are split into ranges of this many pages, parsed in parallel and
    #: merged in page order (``0``: never split).
    mineru_split_pages: int = Field(default=32, ge=0, validation_alias=_alias("mineru_split_pages"))
    #: A server that failed is left alone this long, then health-checked; a healthy one is
    #: checked again after this long.
    mineru_health_interval_s: float = Field(
        default=15.0, gt=0, validation_alias=_alias("mineru_health_interval_s")
    )
    #: How long a submitted MinerU task may take, queueing included, before we give up on it
    #: (and cancel it on the server).
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

    @property
    def servers(self) -> list[str]:
        """The MinerU server base URLs (``mineru_urls``, else ``mineru_url``), no trailing /."""
        urls = self.mineru_urls or ([self.mineru_url] if self.mineru_url is not None else [])
        return list(dict.fromkeys(str(url).rstrip("/") for url in urls))
