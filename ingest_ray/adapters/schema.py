"""Base pieces of the typed API payload models: frozen, unknown fields ignored, and ``null``
lists read as empty (the APIs send ``null`` where a list would be empty)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

T = TypeVar("T")


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


#: a list that may arrive as ``null``
NullableList = Annotated[list[T], BeforeValidator(_none_as_empty)]


class ApiModel(BaseModel):
    """A third-party payload we only partly use: frozen, extra fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
