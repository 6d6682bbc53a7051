"""Route handlers: each one authorises, validates, calls ``ingest_ray`` and translates back."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """A JSON response from a response model."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
