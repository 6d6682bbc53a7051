"""MinerU in-process, for GPU actors that have the ``mineru`` package and its models installed.

MinerU loads its models once per process and keeps them, so this mode runs in the actor itself,
in worker threads so the event loop stays responsive. It calls MinerU 4.x's documented Python
entry point, ``mineru.parser.MinerUParser(tier=..., parse_mode=..., vlm_config=...)
.parse(path, page_range=...)``, and turns the middle JSON it returns into the content list with
:func:`~ingest_ray.parsing.middle.content_list_from_middle` (the same code that reads the
``/v1`` API's answers). With ``mineru_vlm_url`` set, MinerU's VLM runs on that OpenAI-compatible
server (``vllm serve``, MinerU's ``vlm-http-client``) instead of in this process. Nothing here
imports MinerU unless it is used.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from ingest_ray.errors import ConfigurationError
from ingest_ray.parsing.content import ContentItem
from ingest_ray.parsing.errors import (
    MineruTaskFailedError,
    MineruUnavailableError,
    ParseError,
)
from ingest_ray.parsing.middle import content_list_from_middle
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.pdf_lock import PDFIUM_LOCK

_OUT_OF_MEMORY = ("out of memory", "cuda error", "cublas")


def mineru_available() -> bool:
    """Whether the ``mineru`` package can be imported here (checked without importing it)."""
    return _findable("mineru")


def mineru_runtime_available(settings: ParseSettings) -> bool:
    """Whether MinerU can run models here: the package and either its torch runtime
    (``mineru[torch]``/``mineru[full]``) or a VLM server to call. The base package alone
    (as the HTTP client's tests install it) is not enough to be picked by ``mode="auto"``."""
    return mineru_available() and (settings.mineru_vlm_url is not None or _findable("torch"))


def vlm_config(settings: ParseSettings) -> Any:
    """MinerU's ``VlmConfig`` for ``mineru_vlm_url`` (``None``: MinerU's own configuration)."""
    if settings.mineru_vlm_url is None:
        return None
    from mineru.config import VlmConfig  # noqa: PLC0415 - optional dependency

    key = settings.mineru_vlm_api_key
    return VlmConfig(
        server_url=str(settings.mineru_vlm_url),
        model=settings.mineru_vlm_model,
        api_key=key.get_secret_value() if key is not None else "",
    )


class MineruEngine:
    """MinerU's parser of this process (built on first use, shared by the actor's threads)."""

    def __init__(self, settings: ParseSettings) -> None:
        self.settings = settings
        self._parser: Any = None
        self._lock = threading.Lock()

    def parse(self, pdf: Path, start: int, end: int, pages: int) -> list[ContentItem]:
        """Parse pages ``[start, end)`` of ``pdf`` (blocking; call from a worker thread)."""
        page_range = "" if (start, end) == (0, pages) else f"{start + 1}-{end}"
        try:
            parser = self._mineru()
            # MinerU's calls in one process take turns in pdfium (see ingest_ray.pdf_lock); the
            # actor's other in-flight parts still overlap their downloads, uploads and waiting
            with PDFIUM_LOCK:
                middle = parser.parse(pdf, page_range=page_range).to_dict()
        except ParseError:
            raise
        except Exception as exc:
            raise _mapped(exc) from exc
        return content_list_from_middle(middle)

    def _mineru(self) -> Any:
        with self._lock:
            if self._parser is None:
                try:
                    from mineru.parser import MinerUParser  # noqa: PLC0415 - optional, heavy
                except ImportError as exc:
                    raise ConfigurationError(
                        f"parse mode 'inprocess' needs the mineru>=4 package: {exc}"
                    ) from exc
                self._parser = MinerUParser(
                    tier=self.settings.mineru_tier or "standard",
                    parse_mode=self.settings.mineru_parse_method,
                    vlm_config=vlm_config(self.settings),
                )
            return self._parser


def _mapped(exc: Exception) -> ParseError:
    """MinerU's exception as ours: a dead engine or GPU memory may recover (retryable);
    anything else MinerU raised about this document is permanent."""
    from mineru.model.vlm.errors import is_fatal_engine_error  # noqa: PLC0415

    text = f"{type(exc).__name__}: {exc}"
    if is_fatal_engine_error(exc) or any(m in text.lower() for m in _OUT_OF_MEMORY):
        return MineruUnavailableError(f"MinerU's engine failed: {text}"[:500])
    return MineruTaskFailedError(f"MinerU could not parse the document: {text}"[:500])


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
