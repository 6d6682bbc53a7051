"""Reading request bodies within caps: JSON (413 above ``max_body_bytes``) and one PDF upload
(413 above ``max_upload_mb``, 415 unless it starts with ``%PDF-``)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from serve_app.errors import (
    BadRequestError,
    PayloadTooLargeError,
    RequestValidationError,
    UnsupportedMediaTypeError,
)

_FORM_SLACK = 64 * 1024  # multipart framing and the small form fields


def _declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"body of {declared} bytes exceeds the {limit} byte cap")


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLargeError(f"body exceeds the {limit} byte cap")
        yield chunk


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body (400 when it is not JSON, 413 above ``limit``)."""
    _declared_length(request, limit)
    body = b"".join([chunk async for chunk in _limited(request, limit)])
    try:
        data = json.loads(body)
        # lone surrogates parse but can be stored nowhere: refuse them here
        json.dumps(data, ensure_ascii=False).encode()
    except (UnicodeError, json.JSONDecodeError) as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequestError("body is nested too deeply") from exc
    return data


async def read_pdf_form(request: Request, limit: int) -> tuple[bytes, dict[str, str], str | None]:
    """The uploaded ``file`` (a PDF), the other form fields as text, and the file's name."""
    _declared_length(request, limit + _FORM_SLACK)
    parser = MultiPartParser(
        request.headers, _limited(request, limit + _FORM_SLACK), max_files=1, max_fields=10
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequestError(f"malformed multipart body: {exc.message}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestValidationError(
                "file: a PDF file part is required",
                details=[{"loc": ["body", "file"], "msg": "field required", "type": "missing"}],
            )
        data = await upload.read(limit + 1)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
    finally:
        await form.close()
    if len(data) > limit:
        raise PayloadTooLargeError(f"upload exceeds the {limit} byte cap")
    if not data.startswith(b"%PDF-"):
        raise UnsupportedMediaTypeError("the uploaded file is not a PDF (no %PDF- header)")
    return data, fields, name or None
