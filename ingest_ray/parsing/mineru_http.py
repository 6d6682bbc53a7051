"""One MinerU server over HTTP: requests with every failure turned into a typed parse error, and
the detection of which API generation the server speaks.

Error mapping (the same for every generation): a refused connection, a timeout, 429 and any 5xx
are :class:`MineruUnavailableError` (retryable, with the server's ``Retry-After``); other 4xx
answers are :class:`MineruRequestError` (permanent: the file or the options are wrong for this
server). MinerU 4.x wraps errors as ``{"error": {"type", "code", "message", "param"}}``, 2.x/3.x
as ``{"detail": ...}`` or ``{"error": "..."}``; both are read for the message.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from ingest_ray.parsing.errors import (
    MineruRequestError,
    MineruResultError,
    MineruUnavailableError,
)

ApiGeneration = Literal["v1", "tasks", "file_parse"]


class MineruHttp:
    """Requests to one server (``base`` without a trailing slash) on a shared client."""

    def __init__(self, base: str, client: httpx.AsyncClient) -> None:
        self.base = base.rstrip("/")
        self.client = client

    async def request(
        self, method: str, path: str, *, lost_is_retryable: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """Send; answer the response when it is < 400, raise the mapped error otherwise.
        ``lost_is_retryable``: a 404 means the server forgot a task (a restart), worth retrying."""
        try:
            response = await self.client.request(method, f"{self.base}{path}", **kwargs)
        except httpx.TimeoutException as exc:
            raise MineruUnavailableError(
                f"MinerU at {self.base} timed out on {method} {path}: {exc!r}"
            ) from exc
        except httpx.TransportError as exc:
            raise MineruUnavailableError(
                f"MinerU at {self.base} unreachable on {method} {path}: {exc!r}"
            ) from exc
        status = response.status_code
        if status < 400:
            return response
        detail = error_detail(response)
        if status == 429 or status >= 500 or (status == 404 and lost_is_retryable):
            raise MineruUnavailableError(
                f"MinerU at {self.base} answered {status} to {method} {path}: {detail}",
                retry_after=retry_after(response),
            )
        raise MineruRequestError(f"MinerU refused {method} {path} ({status}): {detail}")

    async def detect(self) -> ApiGeneration:
        """Which API the server speaks: its OpenAPI paths, else which health route answers."""
        try:
            paths = json_object(await self.request("GET", "/openapi.json")).get("paths")
        except (MineruRequestError, MineruResultError):
            paths = None
        if isinstance(paths, dict):
            for route, generation in _ROUTES:
                if route in paths:
                    return generation
        for route, generation in (("/v1/health", "v1"), ("/health", "tasks")):
            try:
                await self.request("GET", route)
            except MineruRequestError:
                continue
            return generation
        raise MineruUnavailableError(f"{self.base} speaks no MinerU API we know")


_ROUTES: tuple[tuple[str, ApiGeneration], ...] = (
    ("/v1/tasks", "v1"),
    ("/tasks", "tasks"),
    ("/file_parse", "file_parse"),
)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or :class:`MineruResultError`."""
    try:
        payload = response.json()
    except ValueError as exc:
        raise MineruResultError(f"MinerU answered non-JSON ({response.status_code})") from exc
    if not isinstance(payload, dict):
        raise MineruResultError(f"MinerU answered a JSON {type(payload).__name__}, not an object")
    return payload


def error_detail(response: httpx.Response) -> str:
    """The error message of a MinerU answer, whichever envelope it uses."""
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = f" [{error['code']}]" if error.get("code") else ""
            return f"{error['message'][:500]}{code}"
        for key in ("detail", "error", "message"):
            if isinstance(payload.get(key), str):
                return str(payload[key])[:500]
    return str(payload)[:200]


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, when it is a number."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
