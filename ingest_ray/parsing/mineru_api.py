"""A client for one MinerU server, whichever API generation it speaks.

* MinerU 4.x: the ``/v1`` task API (:mod:`ingest_ray.parsing.mineru_v1`);
* MinerU 2.x/3.x: ``/tasks`` or the synchronous ``/file_parse``
  (:mod:`ingest_ray.parsing.mineru_legacy`).

``mineru_api_style="auto"`` (the default) asks the server once, from its OpenAPI document
(``/openapi.json``), else from which health route answers; the answer is kept for the life of
the client. Every generation takes several files in one request and answers per file, in upload
order. Task URLs are built from the configured base URL, never taken from the server's answer.
MinerU is an internal service: it is reached directly, never through a proxy from the
environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ingest_ray.parsing.content import ContentItem
from ingest_ray.parsing.errors import MineruUnavailableError
from ingest_ray.parsing.mineru_http import ApiGeneration, MineruHttp, json_object
from ingest_ray.parsing.mineru_legacy import LegacyApi
from ingest_ray.parsing.mineru_v1 import V1Api
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.parsing.uploads import FileOutcome, Upload

_HEALTHY = ("healthy", "ok")


class MineruClient:
    """Talks to one MinerU server; construct once per actor, ``aclose`` when done."""

    def __init__(
        self,
        settings: ParseSettings,
        *,
        url: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        base = url or next(iter(settings.servers), None)
        if base is None:
            raise ValueError("MineruClient needs a server URL (ParseSettings.mineru_urls)")
        self.settings = settings
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.mineru_request_timeout_s, connect=10.0),
            trust_env=False,
        )
        self.http = MineruHttp(base, self._client)
        self._generation: ApiGeneration | None = (
            None if settings.mineru_api_style == "auto" else settings.mineru_api_style
        )

    @property
    def base(self) -> str:
        """The server's base URL."""
        return self.http.base

    async def generation(self) -> ApiGeneration:
        """The API generation this server speaks (detected once when ``auto``)."""
        if self._generation is None:
            self._generation = await self.http.detect()
        return self._generation

    async def health(self) -> dict[str, Any]:
        """The server's health answer; :class:`MineruUnavailableError` when not healthy
        (4.x ``GET /v1/health`` answers 503 while its engine is down or not loaded)."""
        route = "/v1/health" if await self.generation() == "v1" else "/health"
        payload = json_object(await self.http.request("GET", route))
        if payload.get("status") not in _HEALTHY:
            raise MineruUnavailableError(f"MinerU at {self.base} is not healthy: {payload}")
        return payload

    async def parse_files(self, uploads: Sequence[Upload]) -> list[FileOutcome]:
        """Parse several files in one request; one outcome per file, in order. Raises only
        what concerns the whole request (server away, request refused, task timed out)."""
        generation = await self.generation()
        if generation == "v1":
            return await V1Api(self.http, self.settings).parse(uploads)
        return await LegacyApi(self.http, self.settings, sync=generation == "file_parse").parse(
            uploads
        )

    async def parse(self, pdf: Path, *, upload_name: str = "f000.pdf") -> list[ContentItem]:
        """Parse one PDF and return its content list (its error raised)."""
        (outcome,) = await self.parse_files([Upload(upload_name, pdf)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def v1(self) -> V1Api:
        """The ``/v1`` task API of this server (submit, status, wait, cancel one by one)."""
        return V1Api(self.http, self.settings)

    async def aclose(self) -> None:
        """Close the HTTP client if we made it."""
        if self._own_client:
            await self._client.aclose()
